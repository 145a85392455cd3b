#!/usr/bin/env bash
# Ninth-round reports (docs/results/README.md, "Ninth round"): the finals of run_final9.sh
# (runs/sweeps9/TASK: ee_ts and bai_ts, one paid pair per step, 8 candidates, replay 2) beside
# round 8's (runs/sweeps8/TASK), round 7's (runs/sweeps7/TASK: passive + replay 10, ee_ts, bai_ts)
# and round 6's apl and xpo (runs/sweeps6/TASK, identical in round 7), against passive + replay 10;
# then against round 8's ee_ts on the same seeds (what this round's change alone does).
#   bash docs/results/report9.sh sort|style|arithmetic   # -> docs/results/TASK-sweeps9{,-vs-r8}/
set -euo pipefail
task=$1
dirs=("runs/sweeps9/$task" "runs/sweeps8/$task" "runs/sweeps7/$task")
for s in apl xpo; do
  for seed in 0 1 2 3 4; do
    [ -e "runs/sweeps6/$task/$s-s$seed/config.yaml" ] && dirs+=("runs/sweeps6/$task/$s-s$seed")
  done
done
# the ablation, where it was run: passive's pair with this round's settings and ERM labels
#   R9 as in run_final9.sh; style: add sampling.max_new_tokens=16 eval.greedy=false
#   PARALLEL=2 bash docs/results/run_ablation2.sh TASK passive "$R9" passive-mixed-r9
abl="runs/sweeps2/$task-passive-mixed-r9"
[ -d "$abl" ] && dirs+=("$abl")
duel report "${dirs[@]}" --baseline "passive replay.updates=10" --out "docs/results/$task-sweeps9"
duel report "${dirs[@]}" --baseline "ee_ts candidates=8 eval.every=40" --out "docs/results/$task-sweeps9-vs-r8" > /dev/null
if [ -d "$abl" ]; then
  duel report "${dirs[@]}" --baseline "passive candidates=8 replay.updates=2" --out "docs/results/$task-sweeps9-vs-mixed" > /dev/null
fi
top=5; [ "$task" = style ] && top=6
python bench/pair_stats.py "runs/sweeps9/$task" "runs/sweeps8/$task" "runs/sweeps7/$task" --top "$top" \
  --json "docs/results/$task-sweeps9/pair_stats.json" > "docs/results/$task-sweeps9/pair_stats.md"

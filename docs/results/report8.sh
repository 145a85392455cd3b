#!/usr/bin/env bash
# Eighth-round reports (docs/results/README.md, "Eighth round"): the finals of run_final8.sh
# (runs/sweeps8/TASK: ee_ts and bai_ts with 8 candidates) beside round 7's finals (runs/sweeps7/TASK:
# passive + replay 10, ee_ts and bai_ts with 4 candidates) and round 6's apl and xpo
# (runs/sweeps6/TASK, identical in round 7), against passive + replay 10; then against round 7's
# ee_ts (what 8 candidates alone change, same seeds) and against the ablation where it exists.
#   bash docs/results/report8.sh sort|style|arithmetic   # -> docs/results/TASK-sweeps8{,-vs-r7,-vs-mixed}/
set -euo pipefail
task=$1
common="erm.features=hidden_probs eval.every=40 loss.beta=0.2 mixed.burn_in=2 mixed.gamma=0.875 mixed.min_confidence=0.75 mixed.unconfident=drop replay.updates=3"
B="passive candidates=4 erm.features=hidden eval.every=5 loss.beta=0.1 mixed.burn_in=0 mixed.gamma=0.0 mixed.min_confidence=0.5 mixed.unconfident=ask replay.updates=10"
dirs=("runs/sweeps8/$task" "runs/sweeps7/$task")
for s in apl xpo; do
  for seed in 0 1 2 3 4; do
    [ -e "runs/sweeps6/$task/$s-s$seed/config.yaml" ] && dirs+=("runs/sweeps6/$task/$s-s$seed")
  done
done
# the ablation: passive's pair with the same 8 candidates and ERM labels (started, then stopped for
# round 9; not in the reports):
#   PARALLEL=2 bash docs/results/run_ablation2.sh TASK passive "$common candidates=8" passive-mixed-r7-m8
#   (style: add sampling.max_new_tokens=16 eval.greedy=false)
abl="runs/sweeps2/$task-passive-mixed-r7-m8"
[ -d "$abl" ] && dirs+=("$abl")
duel report "${dirs[@]}" --baseline "$B" --out "docs/results/$task-sweeps8"
duel report "${dirs[@]}" --baseline "ee_ts candidates=4 $common" --out "docs/results/$task-sweeps8-vs-r7" > /dev/null
if [ -d "$abl" ]; then
  duel report "${dirs[@]}" --baseline "passive candidates=8 $common" --out "docs/results/$task-sweeps8-vs-mixed" > /dev/null
fi
top=5; [ "$task" = style ] && top=6
python bench/pair_stats.py "runs/sweeps8/$task" "runs/sweeps7/$task" --top "$top" \
  --json "docs/results/$task-sweeps8/pair_stats.json" > "docs/results/$task-sweeps8/pair_stats.md"

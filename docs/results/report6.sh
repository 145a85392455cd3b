#!/usr/bin/env bash
# Sixth-round reports (docs/results/README.md, "Sixth round"): the finals of run_final6.sh
# (runs/sweeps6/TASK), the replay ablation (passive with the active recipe's ERM labels and
# replay, runs/sweeps2/TASK-passive-mixed-r4-rp3, where run) and round 2's plain passive and xpo
# (runs/sweeps2/TASK, no replay) for reference; the baseline is passive + replay 10.
#   bash docs/results/report6.sh sort|style|arithmetic   # -> docs/results/TASK-sweeps6/
# The ablation (run for `sort` and `style`; R4 = run_final6.sh's mixed setting):
#   PARALLEL=2 bash docs/results/run_ablation2.sh sort passive "$R4 replay.updates=3" passive-mixed-r4-rp3
#   PARALLEL=2 bash docs/results/run_ablation2.sh style passive \
#     "$R4 replay.updates=3 sampling.max_new_tokens=16 eval.greedy=false" passive-mixed-r4-rp3
set -euo pipefail
task=$1
B="passive eval.every=5 loss.beta=0.1 mixed.burn_in=0 mixed.gamma=0.0 mixed.min_confidence=0.5 mixed.unconfident=ask replay.updates=10"
dirs=("runs/sweeps6/$task" runs/sweeps2/"$task"/passive-s{0,1,2,3,4} runs/sweeps2/"$task"/xpo-s{0,1,2,3,4})
# ee_ts at these settings on these seeds is round 5's exploratory run, bit for bit (deterministic
# per seed), where the finals did not run it again
[ -e "runs/sweeps6/$task/ee_ts-s4/config.yaml" ] || dirs+=("runs/replay/$task/ee_ts-r4-replay3")
[ -d "runs/sweeps2/$task-passive-mixed-r4-rp3" ] && dirs+=("runs/sweeps2/$task-passive-mixed-r4-rp3")
duel report "${dirs[@]}" --baseline "$B" --out "docs/results/$task-sweeps6"
top=5; [ "$task" = style ] && top=6
python bench/pair_stats.py "runs/sweeps6/$task" --top "$top" \
  --json "docs/results/$task-sweeps6/pair_stats.json" > "docs/results/$task-sweeps6/pair_stats.md"
# the ablation as the baseline: is it the pair choice or the ERM's labels (same labels, same replay)?
if [ -d "runs/sweeps2/$task-passive-mixed-r4-rp3" ]; then
  A="passive eval.every=40 loss.beta=0.2 mixed.burn_in=2 mixed.gamma=0.875 mixed.min_confidence=0.75 mixed.unconfident=drop replay.updates=3"
  duel report "${dirs[@]}" --baseline "$A" --out "docs/results/$task-sweeps6-vs-mixed" > /dev/null
fi

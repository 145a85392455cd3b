#!/usr/bin/env bash
# The second-round issue-14 sweeps (docs/results/README.md, "Second round"): the recipe
# launch/configs/recipe-sea.yaml, 5 strategies x seeds 0-4 (tuning used seeds 100-101), 640
# oracle queries per run; ee_ts and bai_ts with SEA's mixed preference learning.
#   bash docs/results/run_final2.sh arithmetic|sort|style
set -euo pipefail
task=$1
extra=()
if [ "$task" = style ]; then extra=(--set sampling.max_new_tokens=16 --set eval.greedy=false); fi
mixed=()
for s in ee_ts bai_ts; do
  for kv in mixed.gamma=0.75 mixed.burn_in=5 eval.every=20; do mixed+=(--set-for "$s:$kv"); done
done
# a sweep that is run again skips its complete runs and resumes partial ones
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-sea.yaml --strategies passive,ee_ts,bai_ts,xpo,apl --seeds 0,1,2,3,4 \
    --set task="$task" "${extra[@]}" "${mixed[@]}" --parallel "${PARALLEL:-2}" --out "runs/sweeps2/$task" && break
done
duel report "runs/sweeps2/$task" --out "docs/results/$task-sea"
top=5; [ "$task" = style ] && top=6
python bench/pair_stats.py "runs/sweeps2/$task" --top "$top" --json "docs/results/$task-sea/pair_stats.json" > "docs/results/$task-sea/pair_stats.md"

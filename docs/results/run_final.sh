#!/usr/bin/env bash
# The issue-14 sweeps reported in docs/results/README.md: the recipe (launch/configs/recipe.yaml),
# 5 strategies x seeds 0-4 (the tuning used seeds 100-101), 960 oracle queries per run.
#   bash docs/results/run_final.sh arithmetic|sort|style
set -euo pipefail
task=$1
extra=()
if [ "$task" = style ]; then extra=(--set sampling.max_new_tokens=16 --set eval.greedy=false); fi
# a sweep that is run again skips its complete runs and resumes partial ones (a retry after Ray
# failed to start on a loaded machine loses nothing)
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe.yaml --strategies passive,ee_ts,bai_ts,xpo,apl --seeds 0,1,2,3,4 \
    --budget 960 --set task="$task" "${extra[@]}" --parallel "${PARALLEL:-3}" --out "runs/sweeps/$task" && break
done
duel report "runs/sweeps/$task" --out "docs/results/$task-round1"
top=5; [ "$task" = style ] && top=6
python bench/pair_stats.py "runs/sweeps/$task" --top "$top" --json "docs/results/$task-round1/pair_stats.json" > "docs/results/$task-round1/pair_stats.md"

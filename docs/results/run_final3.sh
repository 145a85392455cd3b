#!/usr/bin/env bash
# The third-round issue-14 sweeps (docs/results/README.md, "Third round"): ee_ts and bai_ts with
# the mixed preference settings fixed from tuning on `style` seeds 100-101
# (docs/results/tuning3/), on seeds 0-4 of the recipe launch/configs/recipe-sea.yaml. passive,
# xpo and apl are not run again: their runs in runs/sweeps2/TASK (same recipe, same seeds) are
# the baseline of the report, next to the second round's ee_ts / bai_ts.
#   bash docs/results/run_final3.sh arithmetic|sort|style
set -euo pipefail
task=$1
MIXED=${MIXED:-"mixed.gamma=0.875 mixed.burn_in=5 eval.every=40"}
OUT=${OUT:-sweeps3}          # runs/$OUT/TASK; the report goes to docs/results/TASK-$OUT
STRATEGIES=${STRATEGIES:-ee_ts,bai_ts}
extra=()
if [ "$task" = style ]; then extra=(--set sampling.max_new_tokens=16 --set eval.greedy=false); fi
mixed=()
for s in ${STRATEGIES//,/ }; do
  for kv in $MIXED; do mixed+=(--set-for "$s:$kv"); done
done
[ -d "runs/sweeps2/$task" ] || { echo "runs/sweeps2/$task is missing: run docs/results/run_final2.sh $task first" >&2; exit 2; }
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-sea.yaml --strategies "$STRATEGIES" --seeds 0,1,2,3,4 \
    --set task="$task" "${extra[@]}" "${mixed[@]}" --parallel "${PARALLEL:-2}" --out "runs/$OUT/$task" && break
done
rep="docs/results/$task-sea3"; dirs=("runs/sweeps2/$task" "runs/sweeps3/$task")
if [ "$OUT" != sweeps3 ]; then rep="docs/results/$task-$OUT"; dirs+=("runs/$OUT/$task"); fi
duel report "${dirs[@]}" --out "$rep"
top=5; [ "$task" = style ] && top=6
python bench/pair_stats.py "runs/sweeps2/$task" "runs/$OUT/$task" --top "$top" \
  --json "$rep/pair_stats.json" > "$rep/pair_stats.md"

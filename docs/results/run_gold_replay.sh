#!/usr/bin/env bash
# Issue 14, fifth round, follow-up: does the pair choice's ceiling rise when the learner uses each
# label more? ee_ts with the gold-feature ensemble (run_gold.sh) and passive, both without ERM
# labels, with `replay.updates=3` (3 extra policy updates per step on replayed paid labels;
# a replayed label is never a new query). Seeds 0-4 of launch/configs/recipe-sea.yaml; nothing tuned.
#   bash docs/results/run_gold_replay.sh sort    # runs/gold/TASK/{ee_ts,passive}-replay3 -> docs/results/TASK-gold-replay
set -euo pipefail
task=$1; updates=${UPDATES:-3}
extra=(--set "replay.updates=$updates")
if [ "$task" = style ]; then extra+=(--set sampling.max_new_tokens=16 --set eval.greedy=false); fi
for s in passive ee_ts; do
  more=(); [ "$s" = ee_ts ] && more=(--set erm.features=gold)
  for attempt in 1 2 3; do
    duel sweep launch/configs/recipe-sea.yaml --strategies "$s" --seeds 0,1,2,3,4 --set task="$task" \
      "${extra[@]}" "${more[@]}" --parallel "${PARALLEL:-1}" --out "runs/gold/$task/$s-replay$updates" && break
  done
done
duel report runs/sweeps2/"$task"/passive-s{0,1,2,3,4} "runs/gold/$task/ee_ts" "runs/gold/$task/passive-replay$updates" \
  "runs/gold/$task/ee_ts-replay$updates" --baseline "passive erm.features=hidden replay.updates=0" \
  --out "docs/results/$task-gold-replay"

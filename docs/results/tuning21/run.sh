#!/usr/bin/env bash
# Round 21's tuning (docs/results/tuning21/PLAN.md): ee_ts and bai_ts of recipe-r13 with 16
# (shipped) and 64 pairs per replayed update, seeds 100-103 of `arithmetic` and `sort`.
#   bash docs/results/tuning21/run.sh && python docs/results/tuning21/rule.py
set -euo pipefail
for task in arithmetic sort; do
  for b in 16 64; do
    for attempt in 1 2 3; do
      duel sweep launch/configs/recipe-r13.yaml --set task=$task --set-for ee_ts:replay.batch=$b \
        --set-for bai_ts:replay.batch=$b --strategies ee_ts,bai_ts --seeds 100-103 \
        --parallel "${PARALLEL:-2}" --out "runs/tuning21/$task-A$b" && break
    done
  done
done

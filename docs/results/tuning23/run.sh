#!/usr/bin/env bash
# Round 23's tuning (docs/results/tuning23/PLAN.md): round 22's P32 for ee_ts and bai_ts on `sort`
# seeds 100-103 (A16 is round 21's runs/tuning21/sort-A16).
#   bash docs/results/tuning23/run.sh && python docs/results/tuning23/rule.py
set -euo pipefail
p32=()
for s in ee_ts bai_ts; do
  p32+=(--set-for "$s:prompts_per_step=32" --set-for "$s:mixed.gamma=0.96875" --set-for "$s:replay.batch=16")
done
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-r13.yaml --set task=sort "${p32[@]}" --strategies ee_ts,bai_ts \
    --seeds 100-103 --parallel "${PARALLEL:-2}" --out runs/tuning23/sort-P32 && break
done

#!/usr/bin/env bash
# Round 25's finals (PLAN.md), run only for the strategy rule.py chose: P64 on `arithmetic` seeds 0-9.
#   bash docs/results/tuning25/run_finals.sh ee_ts|bai_ts && python docs/results/tuning25/against.py
set -euo pipefail
g=$1
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-r22-arithmetic.yaml --set-for "$g:prompts_per_step=64" \
    --set-for "$g:mixed.gamma=0.984375" --set-for "$g:mixed.burn_in=1" \
    --strategies "$g" --seeds "${SEEDS:-0-9}" --parallel "${PARALLEL:-2}" --out runs/tuning25/final-arithmetic && break
done

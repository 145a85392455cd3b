#!/usr/bin/env bash
# Round 26's finals (PLAN.md), run only for the strategy rule.py chose: S32 on `style` seeds 5-9.
#   bash docs/results/tuning26/run_finals.sh ee_ts|bai_ts
set -euo pipefail
g=$1
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-r16-style.yaml --set-for "$g:prompts_per_step=32" \
    --set-for "$g:mixed.gamma=0.96875" --set-for "$g:replay.batch=16" \
    --strategies "$g" --seeds 5-9 --parallel "${PARALLEL:-2}" --out runs/tuning26/final-style && break
done

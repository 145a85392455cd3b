#!/usr/bin/env bash
# Round 27's finals (PLAN.md), run only for the (strategy, arm) rule.py chose, on `style` seeds 5-9.
#   bash docs/results/tuning27/run_finals.sh ee_ts|bai_ts G100|G200
set -euo pipefail
g=$1
case $2 in G100) at=70 ;; G200) at=170 ;; *) echo "arm: G100 or G200" >&2; exit 2 ;; esac
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-r16-style.yaml --set-for "$g:prompts_per_step_from={$at: 32}" \
    --set-for "$g:mixed.gamma=0.96875" --set-for "$g:replay.batch=16" \
    --strategies "$g" --seeds 5-9 --parallel "${PARALLEL:-2}" --out "runs/tuning27/final-style-$2" && break
done

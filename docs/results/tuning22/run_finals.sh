#!/usr/bin/env bash
# Round 22's finals (PLAN.md), run only for the arm rule.py chose: ee_ts and bai_ts of
# launch/configs/recipe-r22-arithmetic.yaml on `arithmetic` seeds 0-9.
#   bash docs/results/tuning22/run_finals.sh && python docs/results/tuning22/against.py
set -euo pipefail
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-r22-arithmetic.yaml --strategies ee_ts,bai_ts --seeds 0-9 \
    --parallel "${PARALLEL:-2}" --out runs/tuning22/final-arithmetic && break
done

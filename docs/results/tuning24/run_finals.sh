#!/usr/bin/env bash
# Round 24's finals (PLAN.md), run only if rule.py chose P32B1: ee_ts and bai_ts of
# launch/configs/recipe-r24-arithmetic.yaml on `arithmetic` seeds 0-9.
#   bash docs/results/tuning24/run_finals.sh && python docs/results/tuning24/against.py
set -euo pipefail
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-r24-arithmetic.yaml --strategies ee_ts,bai_ts --seeds 0-9 \
    --parallel "${PARALLEL:-2}" --out runs/tuning24/final-arithmetic && break
done

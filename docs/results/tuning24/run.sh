#!/usr/bin/env bash
# Round 24's tuning (docs/results/tuning24/PLAN.md): recipe-r22-arithmetic (P32) with mixed.burn_in=1
# for ee_ts and bai_ts, `arithmetic` seeds 100-103 (P32 is round 22's runs/tuning22/arithmetic-P32).
#   bash docs/results/tuning24/run.sh && python docs/results/tuning24/rule.py
set -euo pipefail
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-r22-arithmetic.yaml --set-for ee_ts:mixed.burn_in=1 \
    --set-for bai_ts:mixed.burn_in=1 --strategies ee_ts,bai_ts --seeds 100-103 \
    --parallel "${PARALLEL:-2}" --out runs/tuning24/arithmetic-P32B1 && break
done

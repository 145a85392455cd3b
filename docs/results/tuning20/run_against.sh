#!/usr/bin/env bash
# Round 20's addendum (PLAN.md): passive with 64 pairs per replayed update (RB64) on the shipped
# reports' seeds, `sort` 0-4 and `arithmetic` 0-9; then against.py.
#   bash docs/results/tuning20/run_against.sh && python docs/results/tuning20/against.py
set -euo pipefail
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-r13.yaml --set task=arithmetic --set replay.batch=64 --strategies passive \
    --seeds 0,1,2,3,4,5,6,7,8,9 --parallel "${PARALLEL:-2}" --out runs/tuning20/final-arithmetic-RB64 && break
done
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-r13.yaml --set task=sort --set replay.batch=64 --strategies passive \
    --seeds 0,1,2,3,4 --parallel "${PARALLEL:-2}" --out runs/tuning20/final-sort-RB64 && break
done

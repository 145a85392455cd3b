#!/usr/bin/env bash
# Fourteenth round, part 1 (docs/results/tuning14/PLAN.md): passive (B2), ee_ts (D) and ee_ts with
# optim.lr=1e-4 (L2), all recipe-r13, tuning seeds 100-103 of `arithmetic`.
#   bash docs/results/tuning14/run.sh   # runs/tuning14/arithmetic-{base,L2}; then python docs/results/tuning14/compare.py
set -euo pipefail
S=100,101,102,103
duel sweep launch/configs/recipe-r13.yaml --set task=arithmetic --strategies passive,ee_ts --seeds $S \
  --parallel "${PARALLEL:-2}" --out runs/tuning14/arithmetic-base
duel sweep launch/configs/recipe-r13.yaml --set task=arithmetic --set optim.lr=1e-4 --strategies ee_ts \
  --seeds $S --parallel "${PARALLEL:-2}" --out runs/tuning14/arithmetic-L2

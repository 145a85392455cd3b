#!/usr/bin/env bash
# Fourteenth round, part 2 (exploratory; docs/results/tuning14/PLAN.md): ee_ts of recipe-r13 with 16
# candidates per prompt, tuning seeds 100-103 of `arithmetic`, against part 1's passive and D.
#   bash docs/results/tuning14/run_c16.sh   # runs/tuning14/arithmetic-C16; then python docs/results/tuning14/compare.py arithmetic C16
set -euo pipefail
duel sweep launch/configs/recipe-r13.yaml --set task=arithmetic --set candidates=16 --strategies ee_ts \
  --seeds 100,101,102,103 --parallel "${PARALLEL:-2}" --out runs/tuning14/arithmetic-C16

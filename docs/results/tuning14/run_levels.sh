#!/usr/bin/env bash
# Fourteenth round, part 3 (docs/results/tuning14/PLAN.md): D (recipe-r13's ee_ts) again on tuning seeds
# 100-101 of `arithmetic` and `sort`, now with the train rows' synthetic_gold_chosen/_mean/_best (new,
# no training change: levels.py checks every eval equals part 1's run of the same seed on `arithmetic`).
#   bash docs/results/tuning14/run_levels.sh && python docs/results/tuning14/levels.py
set -euo pipefail
for task in arithmetic sort; do
  duel sweep launch/configs/recipe-r13.yaml --set task=$task --strategies ee_ts --seeds 100,101 \
    --parallel "${PARALLEL:-2}" --out runs/tuning14/levels-$task
done

#!/usr/bin/env bash
# Round 25's report for `arithmetic` (PLAN.md: bai_ts P64 met (a) and (b) against RB64, so the shipped
# `arithmetic` report moves to launch/configs/recipe-r25-arithmetic.yaml): passive, xpo and apl of
# that recipe on seeds 0-9 (recipe-r13's settings), then the report over them with the runs already
# on disk of the recipe's ee_ts (runs/tuning22/final-arithmetic, recipe-r22's = recipe-r25's ee_ts) and
# bai_ts (runs/tuning25/final-arithmetic); tests/launch/test_presets.py checks those configs equal
# recipe-r25's, and runs are deterministic per seed.
#   bash docs/results/tuning25/run_report.sh    # -> docs/results/arithmetic-r25/
set -euo pipefail
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-r25-arithmetic.yaml --strategies passive,xpo,apl --seeds 0-9 \
    --parallel "${PARALLEL:-2}" --out runs/r25/arithmetic && break
done
dirs=()
for s in 0 1 2 3 4 5 6 7 8 9; do
  dirs+=("runs/r25/arithmetic/passive-s$s" "runs/tuning22/final-arithmetic/ee_ts-s$s"
         "runs/tuning25/final-arithmetic/bai_ts-s$s" "runs/r25/arithmetic/xpo-s$s" "runs/r25/arithmetic/apl-s$s")
done
bash docs/results/report_runs.sh docs/results/arithmetic-r25 runs/r25/arithmetic-combined "${dirs[@]}"

#!/usr/bin/env bash
# Round 25, part 1 (docs/results/tuning25/PLAN.md): P64 (64 prompts per step, one paid, one burn-in
# step of 64 paid) for ee_ts and bai_ts of recipe-r22-arithmetic on `arithmetic` seeds 100-103.
# P32 is round 22's runs/tuning22/arithmetic-P32.
#   bash docs/results/tuning25/run.sh && python docs/results/tuning25/rule.py
set -euo pipefail
SET=""
for g in ee_ts bai_ts; do
  SET+=" --set-for $g:prompts_per_step=64 --set-for $g:mixed.gamma=0.984375 --set-for $g:mixed.burn_in=1"
done
for attempt in 1 2 3; do
  # shellcheck disable=SC2086
  duel sweep launch/configs/recipe-r22-arithmetic.yaml $SET \
    --strategies ee_ts,bai_ts --seeds 100-103 --parallel "${PARALLEL:-2}" \
    --out runs/tuning25/arithmetic-P64 && break
done

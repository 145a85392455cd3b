#!/usr/bin/env bash
# Round 26 (docs/results/tuning26/PLAN.md): ee_ts and bai_ts of recipe-r16-style on `style` seeds
# 100-103, as shipped (S16) and with 32 prompts per step, one paid (S32). A sweep run again skips
# its complete runs and resumes partial ones.
#   bash docs/results/tuning26/run.sh && python docs/results/tuning26/rule.py
set -euo pipefail
declare -A ARMS=(
  [S16]=""
  [S32]="--set-for ee_ts:prompts_per_step=32 --set-for ee_ts:mixed.gamma=0.96875 --set-for ee_ts:replay.batch=16 --set-for bai_ts:prompts_per_step=32 --set-for bai_ts:mixed.gamma=0.96875 --set-for bai_ts:replay.batch=16"
)
for arm in S32 S16; do
  for attempt in 1 2 3; do
    # shellcheck disable=SC2086
    duel sweep launch/configs/recipe-r16-style.yaml ${ARMS[$arm]} \
      --strategies ee_ts,bai_ts --seeds 100-103 --parallel "${PARALLEL:-2}" \
      --out "runs/tuning26/style-$arm" && break
  done
done

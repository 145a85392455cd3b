#!/usr/bin/env bash
# Round 22's tuning (docs/results/tuning22/PLAN.md): ee_ts and bai_ts of recipe-r13 on `arithmetic`
# seeds 100-103 with 4 replayed updates per step (R4) or 32 prompts per step, one paid (P32).
# A16 is round 21's runs/tuning21/arithmetic-A16.
#   bash docs/results/tuning22/run.sh && python docs/results/tuning22/rule.py
set -euo pipefail
declare -A ARMS=(
  [R4]="--set-for ee_ts:replay.updates=4 --set-for bai_ts:replay.updates=4"
  [P32]="--set-for ee_ts:prompts_per_step=32 --set-for ee_ts:mixed.gamma=0.96875 --set-for ee_ts:replay.batch=16 --set-for bai_ts:prompts_per_step=32 --set-for bai_ts:mixed.gamma=0.96875 --set-for bai_ts:replay.batch=16"
)
for arm in R4 P32; do
  for attempt in 1 2 3; do
    # shellcheck disable=SC2086
    duel sweep launch/configs/recipe-r13.yaml --set task=arithmetic ${ARMS[$arm]} \
      --strategies ee_ts,bai_ts --seeds 100-103 --parallel "${PARALLEL:-2}" \
      --out "runs/tuning22/arithmetic-$arm" && break
  done
done

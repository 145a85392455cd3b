#!/usr/bin/env bash
# Round 27 (docs/results/tuning27/PLAN.md): ee_ts and bai_ts of recipe-r16-style on `style` seeds
# 100-103 with a prompts-per-step schedule: 16, then 32 from loop step 70 (G100) or 170 (G200),
# one paid per step throughout. S16 is round 26's runs/tuning26/style-S16. A sweep run again skips
# its complete runs and resumes partial ones.
#   bash docs/results/tuning27/run.sh && python docs/results/tuning27/rule.py
set -euo pipefail
declare -A AT=([G100]=70 [G200]=170)
for arm in G100 G200; do
  sets=()
  for g in ee_ts bai_ts; do
    sets+=(--set-for "$g:prompts_per_step_from={${AT[$arm]}: 32}" --set-for "$g:mixed.gamma=0.96875"
           --set-for "$g:replay.batch=16")
  done
  for attempt in 1 2 3; do
    duel sweep launch/configs/recipe-r16-style.yaml "${sets[@]}" \
      --strategies ee_ts,bai_ts --seeds 100-103 --parallel "${PARALLEL:-2}" \
      --out "runs/tuning27/style-$arm" && break
  done
done

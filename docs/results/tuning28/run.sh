#!/usr/bin/env bash
# Round 28's tuning (docs/results/tuning28/PLAN.md): the shipped passive (recipe-r13, "B2") with
# optim.clip_norm=0.3 (CL3) or loss.label_smoothing=0.1 (LS1), seeds 100-103 of `arithmetic`,
# `sort` and `style`. A sweep run again skips complete runs.
#   bash docs/results/tuning28/run.sh && bash docs/results/tuning28/report.sh
set -euo pipefail
declare -A ARMS=([CL3]="optim.clip_norm=0.3" [LS1]="loss.label_smoothing=0.1")
for task in arithmetic sort style; do
  sets=(--set task=$task)
  [ "$task" = style ] && sets+=(--set sampling.max_new_tokens=16 --set eval.greedy=false)
  for arm in CL3 LS1; do
    for attempt in 1 2 3; do
      duel sweep launch/configs/recipe-r13.yaml "${sets[@]}" --set "${ARMS[$arm]}" --strategies passive \
        --seeds 100,101,102,103 --parallel "${PARALLEL:-2}" --out "runs/tuning28/$task-pas-$arm" && break
    done
  done
done

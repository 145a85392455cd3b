#!/usr/bin/env bash
# Nineteenth round's tuning (docs/results/tuning19/PLAN.md): passive (recipe-r13) with a linear
# learning-rate warmup of 8 and 16 loop steps, seeds 100-103 of `arithmetic`, `sort` and `style`.
# B2 is round 18's runs (runs/tuning18/TASK-pas-B2). Sweeps only; then report.sh.
#   bash docs/results/tuning19/run.sh && bash docs/results/tuning19/report.sh
set -euo pipefail
for task in arithmetic sort style; do
  sets=(--set task=$task)
  [ "$task" = style ] && sets+=(--set sampling.max_new_tokens=16 --set eval.greedy=false)
  for w in 8 16; do
    for attempt in 1 2 3; do
      duel sweep launch/configs/recipe-r13.yaml "${sets[@]}" --set optim.warmup_steps=$w --strategies passive \
        --seeds 100,101,102,103 --parallel "${PARALLEL:-2}" --out "runs/tuning19/$task-pas-WU$w" && break
    done
  done
done

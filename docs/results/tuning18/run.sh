#!/usr/bin/env bash
# Eighteenth round's tuning (docs/results/tuning18/PLAN.md): the shipped passive (recipe-r13:
# replay 10, beta 0.2 = B2) and the same at loss.beta 0.3 (B3) and 0.5 (B5), seeds 100-103 of
# `arithmetic`, `sort` and `style`. Sweeps only (runs/tuning18/TASK-pas-BX); the reports and
# jitter tables come from report.sh. A sweep run again skips complete runs, resumes partial ones.
#   bash docs/results/tuning18/run.sh && bash docs/results/tuning18/report.sh
set -euo pipefail
for task in arithmetic sort style; do
  sets=(--set task=$task)
  [ "$task" = style ] && sets+=(--set sampling.max_new_tokens=16 --set eval.greedy=false)
  for b in 2 3 5; do
    for attempt in 1 2 3; do
      duel sweep launch/configs/recipe-r13.yaml "${sets[@]}" --set loss.beta=0.$b --strategies passive \
        --seeds 100,101,102,103 --parallel "${PARALLEL:-2}" --out "runs/tuning18/$task-pas-B$b" && break
    done
  done
done

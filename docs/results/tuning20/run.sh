#!/usr/bin/env bash
# Twentieth round's tuning (docs/results/tuning20/PLAN.md): the shipped passive (recipe-r13: replay
# 10, beta 0.2) with 32 and 64 pairs per replayed update (replay.batch; default 16), seeds 100-103
# of `arithmetic`, `sort` and `style`, after one B2 run as a determinism check against round 18.
# Sweeps only (runs/tuning20/...); then report.sh. A sweep run again skips complete runs.
#   bash docs/results/tuning20/run.sh && bash docs/results/tuning20/report.sh
set -euo pipefail
duel sweep launch/configs/recipe-r13.yaml --set task=arithmetic --strategies passive --seeds 100, \
  --parallel 1 --out runs/tuning20/check-B2
for task in arithmetic sort style; do
  sets=(--set task=$task)
  [ "$task" = style ] && sets+=(--set sampling.max_new_tokens=16 --set eval.greedy=false)
  for b in 32 64; do
    for attempt in 1 2 3; do
      duel sweep launch/configs/recipe-r13.yaml "${sets[@]}" --set replay.batch=$b --strategies passive \
        --seeds 100,101,102,103 --parallel "${PARALLEL:-2}" --out "runs/tuning20/$task-pas-RB$b" && break
    done
  done
done

#!/usr/bin/env bash
# Tenth round's tuning (docs/results/tuning10/PLAN.md): passive + replay 10 with the lr decayed over
# its 440 optimizer updates (40 loop steps x 11 updates), seeds 100-103 of `sort` and `style`.
# The runs on disk were made with steps=440 before the schedule counted loop steps (learner/configs.py:
# steps x (1 + replay.updates) since the tenth session); steps=40 now gives the same schedule.
#   bash docs/results/tuning10/run.sh   # runs/tuning10/NAME -> docs/results/tuning10/NAME
set -euo pipefail
here=$(dirname "$0")
run() { [ -f "docs/results/tuning10/$1/report.md" ] || ROUND=tuning10 bash "$here/../tuning3/run.sh" "$@"; }
for task in sort style; do
  run "$task-pas-D10" "$task" passive 100,101,102,103 replay.updates=10 steps=40 optim.min_lr_ratio=0.1
  run "$task-pas-D0" "$task" passive 100,101,102,103 replay.updates=10 steps=40 optim.min_lr_ratio=0.0
done

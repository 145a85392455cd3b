#!/usr/bin/env bash
# Twelfth round's tuning (docs/results/tuning12/PLAN.md): the shipped passive (replay 10) at
# loss.beta=0.2, seeds 100-103 of `sort` and `style`.
#   bash docs/results/tuning12/run.sh   # runs/tuning12/NAME -> docs/results/tuning12/NAME
set -euo pipefail
here=$(dirname "$0")
run() { [ -f "docs/results/tuning12/$1/report.md" ] || ROUND=tuning12 bash "$here/../tuning3/run.sh" "$@"; }
for task in sort style; do
  run "$task-pas-B2" "$task" passive 100,101,102,103 replay.updates=10 loss.beta=0.2
done

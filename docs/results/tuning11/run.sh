#!/usr/bin/env bash
# Eleventh round's tuning (docs/results/tuning11/PLAN.md): passive + replay 10 (the shipped
# baseline) evaluated through a Polyak average of its weights, eval.ema 0.9 / 0.97, seeds 100-103
# of `sort` and `style`.
#   bash docs/results/tuning11/run.sh   # runs/tuning11/NAME -> docs/results/tuning11/NAME
set -euo pipefail
here=$(dirname "$0")
run() { [ -f "docs/results/tuning11/$1/report.md" ] || ROUND=tuning11 bash "$here/../tuning3/run.sh" "$@"; }
for task in sort style; do
  run "$task-pas-E90" "$task" passive 100,101,102,103 replay.updates=10 eval.ema=0.9
  run "$task-pas-E97" "$task" passive 100,101,102,103 replay.updates=10 eval.ema=0.97
done

#!/usr/bin/env bash
# Ninth round's tuning (docs/results/tuning8/PLAN.md): ee_ts, round 8's recipe + one paid pair per
# step with the replay at 1 (C) or 2 (D) updates per step, seeds 100-103 of `sort` and `style`.
#   bash docs/results/tuning8/run.sh   # runs/tuning8/NAME -> docs/results/tuning8/NAME
set -euo pipefail
here=$(dirname "$0")
R8="mixed.gamma=0.875 mixed.burn_in=2 eval.every=40 loss.beta=0.2 mixed.min_confidence=0.75 mixed.unconfident=drop replay.updates=3 erm.features=hidden_probs candidates=8"
A="resources.generators=1 mixed.gamma=0.9375 eval.every=80"
run() { [ -f "docs/results/tuning8/$1/report.md" ] || ROUND=tuning8 bash "$here/../tuning3/run.sh" "$@"; }
for task in sort style; do
  # shellcheck disable=SC2086
  run "$task-ee-r8-C" "$task" ee_ts 100,101,102,103 $R8 $A replay.updates=1  # later keys win
  # shellcheck disable=SC2086
  run "$task-ee-r8-D" "$task" ee_ts 100,101,102,103 $R8 $A replay.updates=2
done

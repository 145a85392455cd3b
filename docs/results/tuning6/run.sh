#!/usr/bin/env bash
# Seventh round's tuning (docs/results/tuning6/PLAN.md): seeds 100-103 of `sort` and `style`,
# passive + replay 10 (round 6's baseline) and ee_ts with round 6's recipe + erm.features=hidden_probs.
#   bash docs/results/tuning6/run.sh   # runs/tuning6/NAME -> docs/results/tuning6/NAME
set -euo pipefail
here=$(dirname "$0")
R4="mixed.gamma=0.875 mixed.burn_in=2 eval.every=40 loss.beta=0.2 mixed.min_confidence=0.75 mixed.unconfident=drop"
run() { [ -f "docs/results/tuning6/$1/report.md" ] || ROUND=tuning6 bash "$here/../tuning3/run.sh" "$@"; }
for task in sort style; do
  run "$task-pas-rp10" "$task" passive 100,101,102,103 replay.updates=10
done
for task in sort style; do
  # shellcheck disable=SC2086
  run "$task-ee-r4-rp3-hp" "$task" ee_ts 100,101,102,103 replay.updates=3 erm.features=hidden_probs $R4
done

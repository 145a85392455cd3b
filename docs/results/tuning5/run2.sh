#!/usr/bin/env bash
# Sixth round, the plan's amendment (docs/results/tuning5/PLAN.md): passive's grid extended to
# replay.updates=30 (10 beat 3 at the grid's edge), and ee_ts's candidate with replay.updates=10
# beside 3. Seeds 100-103 of `sort` and `style`, into runs/tuning5/NAME.
#   bash docs/results/tuning5/run2.sh
set -euo pipefail
here=$(dirname "$0")
R4="mixed.gamma=0.875 mixed.burn_in=2 eval.every=40 loss.beta=0.2 mixed.min_confidence=0.75 mixed.unconfident=drop"
run() { [ -d "runs/tuning5/$1" ] || ROUND=tuning5 bash "$here/../tuning3/run.sh" "$@"; }
for task in sort style; do
  run "$task-pas-rp30" "$task" passive 100,101,102,103 replay.updates=30
done
for task in sort style; do
  # shellcheck disable=SC2086
  run "$task-ee-r4-rp10" "$task" ee_ts 100,101,102,103 replay.updates=10 $R4
done

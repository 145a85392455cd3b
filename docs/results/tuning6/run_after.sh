#!/usr/bin/env bash
# Seventh round, after the finals (exploratory, tuning seeds 100-103 only; no final used it): does a
# stricter confidence threshold help now that the ensemble with hidden_probs is confident more
# often? ee_ts as in the finals but mixed.min_confidence=0.85 instead of 0.75.
#   bash docs/results/tuning6/run_after.sh   # runs/tuning6/TASK-ee-r4-rp3-hp-c85 -> docs/results/tuning6/
set -euo pipefail
here=$(dirname "$0")
R4="mixed.gamma=0.875 mixed.burn_in=2 eval.every=40 loss.beta=0.2 mixed.min_confidence=0.85 mixed.unconfident=drop"
for task in style sort; do
  # shellcheck disable=SC2086
  [ -f "docs/results/tuning6/$task-ee-r4-rp3-hp-c85/report.md" ] || ROUND=tuning6 bash "$here/../tuning3/run.sh" \
    "$task-ee-r4-rp3-hp-c85" "$task" ee_ts 100,101,102,103 replay.updates=3 erm.features=hidden_probs $R4
done

#!/usr/bin/env bash
# Sixth round of issue 14 (2026-12-02, sixth session): label replay on both sides, tuned on seeds
# 100-103 of `sort` and `style` (never reported as results). Runs the grid of
# docs/results/tuning5/PLAN.md into runs/tuning5/NAME (tuning3/run.sh with ROUND=tuning5).
#   bash docs/results/tuning5/run.sh
set -euo pipefail
here=$(dirname "$0")
R4="mixed.gamma=0.875 mixed.burn_in=2 eval.every=40 loss.beta=0.2 mixed.min_confidence=0.75 mixed.unconfident=drop"
run() { [ -d "runs/tuning5/$1" ] || ROUND=tuning5 bash "$here/../tuning3/run.sh" "$@"; }
for task in sort style; do
  run "$task-pas-rp3" "$task" passive 100,101,102,103 replay.updates=3
  run "$task-pas-rp10" "$task" passive 100,101,102,103 replay.updates=10
done
for task in sort style; do
  # shellcheck disable=SC2086
  run "$task-ee-r4-rp3" "$task" ee_ts 100,101,102,103 replay.updates=3 $R4
done
run style-pas-s102 style passive 102,103   # plain passive on the two tuning seeds round 3 lacked

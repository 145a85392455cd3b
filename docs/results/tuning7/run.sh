#!/usr/bin/env bash
# Eighth round's tuning (docs/results/tuning7/PLAN.md): ee_ts with round 7's recipe plus
# candidate A (one paid pair per step) or B (8 candidates), seeds 100-103 of `sort` and `style`;
# the baseline (passive + replay 10) is round 7's tuning runs, runs/tuning6/TASK-pas-rp10.
#   bash docs/results/tuning7/run.sh [A|B|AB ...]   # runs/tuning7/NAME -> docs/results/tuning7/NAME
set -euo pipefail
here=$(dirname "$0")
R7="mixed.gamma=0.875 mixed.burn_in=2 eval.every=40 loss.beta=0.2 mixed.min_confidence=0.75 mixed.unconfident=drop replay.updates=3 erm.features=hidden_probs"
A="resources.generators=1 mixed.gamma=0.9375 eval.every=80"
B="candidates=8"
run() { [ -f "docs/results/tuning7/$1/report.md" ] || ROUND=tuning7 bash "$here/../tuning3/run.sh" "$@"; }
for c in "${@:-A B}"; do
  for cc in $c; do
    case $cc in A) extra=$A ;; B) extra=$B ;; AB) extra="$A $B" ;; *) echo "unknown candidate $cc" >&2; exit 2 ;; esac
    for task in sort style; do
      # shellcheck disable=SC2086
      run "$task-ee-r7-$cc" "$task" ee_ts 100,101,102,103 $R7 $extra  # later keys win
    done
  done
done

#!/usr/bin/env bash
# Round 25, part 2 (docs/results/tuning25/PLAN.md): recipe-r22-arithmetic's ee_ts unchanged on the
# held-out `reverse`, seeds 0-9, from the shipped starting policy (the task's settings and XLA_FLAGS
# as docs/results/run_r13.sh runs the shipped `reverse` runs).
#   bash docs/results/tuning25/run_reverse.sh && python docs/results/tuning25/reverse.py
set -euo pipefail
export PYTHONPATH=docs/results/heldout${PYTHONPATH:+:$PYTHONPATH}
export XLA_FLAGS=${XLA_FLAGS:---xla_backend_optimization_level=0}
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-r22-arithmetic.yaml --set task=reverse_task:Reverse \
    --strategies ee_ts --seeds "${SEEDS:-0-9}" --parallel "${PARALLEL:-2}" --out runs/tuning25/reverse-P32 && break
done

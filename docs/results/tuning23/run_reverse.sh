#!/usr/bin/env bash
# Round 23's held-out check (docs/results/tuning23/PLAN.md), made only if rule.py says P32 carries:
# recipe-r22-arithmetic's ee_ts unchanged on `reverse` seeds 0-4 (PLAN's amendments: ee_ts and seeds 0-9
# at first, stopped after seed 4 for time; the runs are deterministic, so this gives those runs) (the task's settings and
# XLA_FLAGS as docs/results/run_r13.sh runs the shipped `reverse` runs).
#   bash docs/results/tuning23/run_reverse.sh && python docs/results/tuning23/reverse.py
set -euo pipefail
export PYTHONPATH=docs/results/heldout${PYTHONPATH:+:$PYTHONPATH}
export XLA_FLAGS=${XLA_FLAGS:---xla_backend_optimization_level=0}
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-r22-arithmetic.yaml --set task=reverse_task:Reverse \
    --strategies ee_ts --seeds 0-4 --parallel "${PARALLEL:-2}" --out runs/tuning23/reverse-P32 && break
done

#!/usr/bin/env bash
# Round 25, part 2's amendment (PLAN.md): round 20's stronger passive RB64 (replay.batch=64) on the
# held-out `reverse`, seeds 0-9 (the task's settings and XLA_FLAGS as docs/results/run_r13.sh).
#   bash docs/results/tuning25/run_reverse_rb64.sh && python docs/results/tuning25/reverse.py
set -euo pipefail
export PYTHONPATH=docs/results/heldout${PYTHONPATH:+:$PYTHONPATH}
export XLA_FLAGS=${XLA_FLAGS:---xla_backend_optimization_level=0}
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-r13.yaml --set task=reverse_task:Reverse --set replay.batch=64 \
    --strategies passive --seeds 0-9 --parallel "${PARALLEL:-2}" --out runs/tuning25/reverse-RB64 && break
done

#!/usr/bin/env bash
# Round 23's amendment (PLAN.md): recipe-r13's passive on `reverse` seeds 0-4 from the starting
# policy this machine builds today (the P32 runs' own), as run_reverse.sh runs them.
#   bash docs/results/tuning23/run_reverse_passive.sh && python docs/results/tuning23/reverse.py
set -euo pipefail
export PYTHONPATH=docs/results/heldout${PYTHONPATH:+:$PYTHONPATH}
export XLA_FLAGS=${XLA_FLAGS:---xla_backend_optimization_level=0}
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-r13.yaml --set task=reverse_task:Reverse --strategies passive \
    --seeds 0-4 --parallel "${PARALLEL:-2}" --out runs/tuning23/reverse-passive && break
done

#!/usr/bin/env bash
# Fourteenth round, part 3 (docs/results/tuning14/PLAN.md): D (recipe-r13's ee_ts) again on tuning seeds
# 100-101 of every task, now with the train rows' synthetic_gold_chosen/_mean/_best (new, no training
# change: levels.py checks every `arithmetic` eval equals part 1's run of the same seed). A complete run
# is skipped, so the script can be rerun. `reverse` is the held-out task: measured here, never tuned on.
#   bash docs/results/tuning14/run_levels.sh && python docs/results/tuning14/levels.py
set -euo pipefail
sweep() {
  duel sweep launch/configs/recipe-r13.yaml --strategies ee_ts --seeds 100,101 --parallel "${PARALLEL:-2}" "$@"
}
sweep --set task=arithmetic --out runs/tuning14/levels-arithmetic
sweep --set task=sort --out runs/tuning14/levels-sort
sweep --set task=style --set sampling.max_new_tokens=16 --set eval.greedy=false --out runs/tuning14/levels-style
PYTHONPATH=docs/results/heldout${PYTHONPATH:+:$PYTHONPATH} XLA_FLAGS=--xla_backend_optimization_level=0 \
  sweep --set task=reverse_task:Reverse --out runs/tuning14/levels-reverse

#!/usr/bin/env bash
# The ensemble against the oracle, online (erm_asked_* in the train rows, new this session): ee_ts of
# recipe-r13 (round 9's D) on tuning seeds 100-101 of `sort` and `style`; then
# python docs/results/tuning13/asked.py (its table; it also checks every eval equals D's run of the
# same seed in runs/tuning8, so the diagnostic changed no training).
set -euo pipefail
duel sweep launch/configs/recipe-r13.yaml --set task=sort --strategies ee_ts --seeds 100,101 \
  --parallel "${PARALLEL:-2}" --out runs/asked/sort
duel sweep launch/configs/recipe-r13.yaml --set task=style --set sampling.max_new_tokens=16 \
  --set eval.greedy=false --strategies ee_ts --seeds 100,101 --parallel "${PARALLEL:-2}" --out runs/asked/style
# the two tasks not tuned on, same tuning seeds (what a gate would read there; nothing reported from them)
duel sweep launch/configs/recipe-r13.yaml --set task=arithmetic --strategies ee_ts --seeds 100,101 \
  --parallel "${PARALLEL:-2}" --out runs/asked/arithmetic
PYTHONPATH=docs/results/heldout${PYTHONPATH:+:$PYTHONPATH} XLA_FLAGS=--xla_backend_optimization_level=0 \
  duel sweep launch/configs/recipe-r13.yaml --set task=reverse_task:Reverse --strategies ee_ts \
  --seeds 100,101 --parallel "${PARALLEL:-2}" --out runs/asked/reverse

#!/usr/bin/env bash
# Seventeenth round (docs/results/tuning17/PLAN.md): the bag of words (W) on the held-out `reverse`,
# seeds 0-4, beside recipe-r13's passive (P) and ee_ts/bai_ts (D) rerun on the same seeds.
# About 30 minutes on 2 quiet CPU cores. A sweep run again skips complete runs, resumes partial ones.
#   bash docs/results/tuning17/run.sh; python docs/results/tuning17/compare.py
set -euo pipefail
export PYTHONPATH=docs/results/heldout${PYTHONPATH:+:$PYTHONPATH}
export XLA_FLAGS=${XLA_FLAGS:---xla_backend_optimization_level=0}  # as the shipped reverse runs
S=0,1,2,3,4
sweep() {
  for attempt in 1 2 3; do
    duel sweep launch/configs/recipe-r13.yaml --set task=reverse_task:Reverse --seeds $S \
      --parallel "${PARALLEL:-2}" "$@" && return 0
  done
  return 1
}
sweep --strategies passive --out runs/r17/reverse-P
sweep --strategies ee_ts,bai_ts --set erm.features=hidden_probs_words --set erm.words_weight=0.5 \
  --out runs/r17/reverse-W
sweep --strategies ee_ts,bai_ts --out runs/r17/reverse-D
duel report runs/r17/reverse-P runs/r17/reverse-W --out docs/results/heldout/report-r17

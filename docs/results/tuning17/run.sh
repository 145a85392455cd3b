#!/usr/bin/env bash
# Seventeenth round (docs/results/tuning17/PLAN.md): the bag of words (W) on the held-out `reverse`,
# seeds 0-4, beside recipe-r13's passive (P) and ee_ts/bai_ts (D) rerun on the same seeds, from two
# starting policies: the shipped one (SFT built with XLA's default options; primary,
# runs/r17/reverse-shipped-*) and the one built under the flag below (runs/r17/reverse-*).
# About 75 minutes on 2 quiet CPU cores. A sweep run again skips complete runs, resumes partial ones.
#   bash docs/results/tuning17/run.sh; python docs/results/tuning17/compare.py
set -euo pipefail
export PYTHONPATH=docs/results/heldout${PYTHONPATH:+:$PYTHONPATH}
export XLA_FLAGS=${XLA_FLAGS:---xla_backend_optimization_level=0}  # as the shipped reverse runs
S=0,1,2,3,4
sweep() {  # OUT_PREFIX, then the sweep's arguments
  local out=$1; shift
  for attempt in 1 2 3; do
    duel sweep launch/configs/recipe-r13.yaml --set task=reverse_task:Reverse --seeds $S \
      --parallel "${PARALLEL:-2}" "$@" --out "$out" && return 0
  done
  return 1
}
W=(--set erm.features=hidden_probs_words --set erm.words_weight=0.5)
# primary: the driver builds the starting policy without XLA_FLAGS (learner.setup), as shipped.
# Its D is the shipped runs (docs/results/heldout/report-r13), rerun last as a check.
sweep runs/r17/reverse-shipped-P --strategies passive
sweep runs/r17/reverse-shipped-W --strategies ee_ts,bai_ts "${W[@]}"
duel report runs/r17/reverse-shipped-P runs/r17/reverse-shipped-W --out docs/results/heldout/report-r17
# beside it: the starting policy built under the flag, in its own cache
(
  export DUEL_CACHE=runs/r17/cache-o0
  python -c "from duel.tasks import get_task; get_task('reverse_task:Reverse').starting_policy('$DUEL_CACHE')"
  sweep runs/r17/reverse-P --strategies passive
  sweep runs/r17/reverse-W --strategies ee_ts,bai_ts "${W[@]}"
  sweep runs/r17/reverse-D --strategies ee_ts,bai_ts
  duel report runs/r17/reverse-P runs/r17/reverse-W --out docs/results/heldout/report-r17-o0
)
sweep runs/r17/reverse-shipped-D --strategies ee_ts,bai_ts

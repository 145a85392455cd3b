#!/usr/bin/env bash
# Amendment (PLAN.md, written before these runs): seeds 5-9 of the held-out `reverse` for passive
# and ee_ts with the chosen eval.ema=0.9, beside seeds 0-4, as the tenth session's 10-seed runs
# (runs/heldout/reverse-s5) with the policy's own eval; then the 10-seed report and checks.
#   bash docs/results/tuning11/run_reverse_s5.sh   # runs/ema/reverse-s5 -> docs/results/ema/reverse-seeds10/
set -euo pipefail
here=$(dirname "$0")
export PYTHONPATH=docs/results/heldout${PYTHONPATH:+:$PYTHONPATH}
export XLA_FLAGS=${XLA_FLAGS:---xla_backend_optimization_level=0}  # as the shipped runs
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-r9.yaml --set eval.ema=0.9 --set task=reverse_task:Reverse \
    --strategies passive,ee_ts --seeds 5,6,7,8,9 --parallel "${PARALLEL:-2}" --out runs/ema/reverse-s5 && break
done
out=docs/results/ema/reverse-seeds10
duel report runs/ema/reverse runs/ema/reverse-s5 --out "$out" > /dev/null
python "$here/same_training.py" runs/ema/reverse-s5 runs/heldout/reverse-s5 > "$out/same_training.txt" || true
python "$here/../tuning10/jitter.py" runs/ema/reverse runs/ema/reverse-s5 > "$out/jitter.md"
cat "$out/same_training.txt" "$out/jitter.md"

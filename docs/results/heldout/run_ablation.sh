#!/usr/bin/env bash
# The held-out task's ablation (PLAN.md, "Amendment, tenth session"): passive's pair with round 9's
# ee_ts settings and ERM labels (recipe-r9.yaml's ee_ts block, as run_ablation2.sh runs it on the
# shipped tasks), seeds 0-4, then reports against passive + replay 10 and against this ablation.
#   bash docs/results/heldout/run_ablation.sh   # runs/heldout/reverse-ablation -> report-vs-mixed/
set -euo pipefail
export PYTHONPATH=docs/results/heldout${PYTHONPATH:+:$PYTHONPATH}
export XLA_FLAGS=${XLA_FLAGS:---xla_backend_optimization_level=0}  # PLAN.md: the compile hang
R9="mixed.burn_in=2 loss.beta=0.2 mixed.min_confidence=0.75 mixed.unconfident=drop erm.features=hidden_probs candidates=8 resources.generators=1 mixed.gamma=0.9375 eval.every=80 replay.updates=2"
args=()
for kv in $R9; do args+=(--set "$kv"); done
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-sea.yaml --strategies passive --seeds 0,1,2,3,4 \
    --set task=reverse_task:Reverse "${args[@]}" --parallel "${PARALLEL:-2}" \
    --out runs/heldout/reverse-ablation && break
done
duel report runs/heldout/reverse runs/heldout/reverse-ablation --baseline "passive replay.updates=10" \
  --out docs/results/heldout/report-ablation > /dev/null
duel report runs/heldout/reverse runs/heldout/reverse-ablation --baseline "passive candidates=8 replay.updates=2" \
  --out docs/results/heldout/report-vs-mixed > /dev/null

#!/usr/bin/env bash
# Seeds 5-9 of the held-out task for passive, ee_ts and the ablation (PLAN.md, "Second amendment"),
# into runs/heldout/reverse-s5 and reverse-ablation-s5 (beside seeds 0-4), then the 10-seed report of the three groups.
#   bash docs/results/heldout/run_seeds10.sh   # -> docs/results/heldout/report-seeds10/
set -euo pipefail
export PYTHONPATH=docs/results/heldout${PYTHONPATH:+:$PYTHONPATH}
export XLA_FLAGS=${XLA_FLAGS:---xla_backend_optimization_level=0}  # as seeds 0-4 ran
R9="mixed.burn_in=2 loss.beta=0.2 mixed.min_confidence=0.75 mixed.unconfident=drop erm.features=hidden_probs candidates=8 resources.generators=1 mixed.gamma=0.9375 eval.every=80 replay.updates=2"
args=()
for kv in $R9; do args+=(--set "$kv"); done
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-r9.yaml --set task=reverse_task:Reverse --strategies ee_ts,passive \
    --seeds 5,6,7,8,9 --parallel "${PARALLEL:-2}" --out runs/heldout/reverse-s5 && break
done
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-sea.yaml --strategies passive --seeds 5,6,7,8,9 \
    --set task=reverse_task:Reverse "${args[@]}" --parallel "${PARALLEL:-2}" \
    --out runs/heldout/reverse-ablation-s5 && break
done
runs=()
for s in 0 1 2 3 4; do
  runs+=(runs/heldout/reverse/passive-s$s runs/heldout/reverse/ee_ts-s$s runs/heldout/reverse-ablation/passive-s$s)
done
for s in 5 6 7 8 9; do
  runs+=(runs/heldout/reverse-s5/passive-s$s runs/heldout/reverse-s5/ee_ts-s$s runs/heldout/reverse-ablation-s5/passive-s$s)
done
duel report "${runs[@]}" --baseline "passive replay.updates=10" --out docs/results/heldout/report-seeds10 > /dev/null
duel report "${runs[@]}" --baseline "passive candidates=8 replay.updates=2" --out docs/results/heldout/report-seeds10-vs-mixed > /dev/null
python bench/pair_stats.py runs/heldout/reverse runs/heldout/reverse-s5 runs/heldout/reverse-ablation \
  runs/heldout/reverse-ablation-s5 --top 5 --json docs/results/heldout/report-seeds10-vs-mixed/pair_stats.json \
  > docs/results/heldout/report-seeds10-vs-mixed/pair_stats.md

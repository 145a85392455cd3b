#!/usr/bin/env bash
# The second held-out task, `dedup` (docs/results/heldout2/PLAN.md), with recipe-r22-arithmetic
# unchanged: passive, ee_ts, bai_ts then xpo, apl on seeds 0-4 (STRATEGIES / SEEDS override).
# A sweep run again skips complete runs.
#   bash docs/results/heldout2/run.sh && bash docs/results/heldout2/report.sh
set -euo pipefail
export PYTHONPATH=docs/results/heldout2${PYTHONPATH:+:$PYTHONPATH}
export XLA_FLAGS=${XLA_FLAGS:---xla_backend_optimization_level=0}  # as the `reverse` runs
for strategies in ${STRATEGIES:-passive,ee_ts,bai_ts xpo,apl}; do
  for attempt in 1 2 3; do
    duel sweep launch/configs/recipe-r22-arithmetic.yaml --set task=dedup_task:Dedup \
      --strategies "$strategies" --seeds "${SEEDS:-0-4}" --parallel "${PARALLEL:-2}" \
      --out runs/heldout2/dedup && break
  done
done

#!/usr/bin/env bash
# The held-out `reverse` with recipe-r22-arithmetic unchanged, all five strategies, seeds 0-4
# (SEEDS=0-9 for the amendment's ten)
# (docs/results/tuning27/REVERSE.md): passive, xpo, apl and bai_ts run here; ee_ts is round 25's
# (runs/tuning25/reverse-P32, `bash docs/results/tuning25/run_reverse.sh`). Then the report.
#   bash docs/results/tuning27/run_reverse.sh    # -> docs/results/reverse-r22/
set -euo pipefail
export PYTHONPATH=docs/results/heldout${PYTHONPATH:+:$PYTHONPATH}
export XLA_FLAGS=${XLA_FLAGS:---xla_backend_optimization_level=0}  # as the shipped `reverse` runs
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-r22-arithmetic.yaml --set task=reverse_task:Reverse \
    --strategies passive,bai_ts,xpo,apl --seeds "${SEEDS:-0-4}" --parallel "${PARALLEL:-2}" --out runs/r27/reverse && break
done
dirs=()
range=${SEEDS:-0-4}
for s in $(seq "${range%-*}" "${range#*-}"); do
  dirs+=("runs/r27/reverse/passive-s$s" "runs/tuning25/reverse-P32/ee_ts-s$s" "runs/r27/reverse/bai_ts-s$s"
         "runs/r27/reverse/xpo-s$s" "runs/r27/reverse/apl-s$s")
done
bash docs/results/report_runs.sh docs/results/reverse-r22 runs/r27/reverse-combined "${dirs[@]}"

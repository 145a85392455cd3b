#!/usr/bin/env bash
# Third tuning round for issue 14 (2026-12-02, later): launch/configs/recipe-sea.yaml on the
# tuning seeds only (SEEDS a comma list, e.g. 100,101; reported runs use seeds 0-4). Usage:
#   bash docs/results/tuning3/run.sh NAME TASK STRATEGIES SEEDS [k=v ...]
# writes runs/$ROUND/NAME (run dirs) and docs/results/$ROUND/NAME/ (report); ROUND defaults to
# tuning3 (docs/results/tuning3/run4.sh sets tuning4)
set -euo pipefail
name=$1; task=$2; strategies=$3; seeds=$4; shift 4
case $seeds in *,*) ;; *) echo "SEEDS must be a comma list (got $seeds)" >&2; exit 2;; esac
sets=(--set task="$task")
if [ "$task" = style ]; then sets+=(--set sampling.max_new_tokens=16 --set eval.greedy=false); fi
for s in "$@"; do sets+=(--set "$s"); done
duel sweep launch/configs/recipe-sea.yaml --strategies "$strategies" --seeds "$seeds" \
  --parallel "${PARALLEL:-2}" "${sets[@]}" --out "runs/${ROUND:-tuning3}/$name"
duel report "runs/${ROUND:-tuning3}/$name" --out "docs/results/${ROUND:-tuning3}/$name" > /dev/null || true

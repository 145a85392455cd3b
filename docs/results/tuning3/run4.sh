#!/usr/bin/env bash
# Fourth tuning round for issue 14 (2026-12-02, fourth session): as tuning3/run.sh, into
# runs/tuning4/NAME and docs/results/tuning4/NAME. Usage:
#   bash docs/results/tuning3/run4.sh NAME TASK STRATEGIES SEEDS [k=v ...]
set -euo pipefail
name=$1; task=$2; strategies=$3; seeds=$4; shift 4
case $seeds in *,*) ;; *) echo "SEEDS must be a comma list (got $seeds)" >&2; exit 2;; esac
sets=(--set task="$task")
if [ "$task" = style ]; then sets+=(--set sampling.max_new_tokens=16 --set eval.greedy=false); fi
for s in "$@"; do sets+=(--set "$s"); done
duel sweep launch/configs/recipe-sea.yaml --strategies "$strategies" --seeds "$seeds" \
  --parallel "${PARALLEL:-2}" "${sets[@]}" --out "runs/tuning4/$name"
duel report "runs/tuning4/$name" --out "docs/results/tuning4/$name" > /dev/null || true

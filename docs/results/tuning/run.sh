#!/usr/bin/env bash
# Tuning sweeps for issue 14 (seeds 100+; the reported sweeps use seeds 0-4). Usage:
#   bash docs/results/tuning/run.sh NAME STRATEGIES SEEDS BUDGET [--set k=v ...]
# writes runs/tuning/NAME (run dirs) and docs/results/tuning/NAME/ (report)
set -euo pipefail
name=$1; strategies=$2; seeds=$3; budget=$4; shift 4
sets=()
for s in "$@"; do sets+=(--set "$s"); done
duel sweep demo --strategies "$strategies" --seeds "$seeds" --budget "$budget" --parallel "${PARALLEL:-2}" \
  --set logging.tensorboard=false --set logging.progress=false --set checkpoint.every=0 \
  "${sets[@]}" --out "runs/tuning/$name"
duel report "runs/tuning/$name" --out "docs/results/tuning/$name" > /dev/null || true

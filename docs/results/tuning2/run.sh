#!/usr/bin/env bash
# Second tuning round for issue 14 (2026-12-02): the recipe (launch/configs/recipe.yaml) on the
# tuning seeds only (SEEDS is a comma list, e.g. 100,101: a bare number would be a count and
# start at seed 0, which is reported). Usage:
#   bash docs/results/tuning2/run.sh NAME STRATEGIES SEEDS BUDGET [k=v ...]
# writes runs/tuning2/NAME (run dirs) and docs/results/tuning2/NAME/ (report)
set -euo pipefail
name=$1; strategies=$2; seeds=$3; budget=$4; shift 4
case $seeds in *,*) ;; *) echo "SEEDS must be a comma list (got $seeds)" >&2; exit 2;; esac
sets=()
for s in "$@"; do sets+=(--set "$s"); done
duel sweep launch/configs/recipe.yaml --strategies "$strategies" --seeds "$seeds" --budget "$budget" \
  --parallel "${PARALLEL:-2}" --set eval.num_prompts=128 --set steps=1000 \
  "${sets[@]}" --out "runs/tuning2/$name"
duel report "runs/tuning2/$name" --out "docs/results/tuning2/$name" > /dev/null || true

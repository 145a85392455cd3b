#!/usr/bin/env bash
# Thirteenth round's tuning (docs/results/tuning13/PLAN.md): ee_ts of recipe-r13 (round 9's D) with
# replay.updates=4 (E4) or optim.lr=1e-4 (L2), seeds 100-103 of `sort` and `style`.
#   bash docs/results/tuning13/run.sh   # runs/tuning13/TASK-ee-NAME; then python docs/results/tuning13/compare.py
set -euo pipefail
run() {
  local name=$1 task=$2; shift 2
  local sets=(--set "task=$task")
  [ "$task" = style ] && sets+=(--set sampling.max_new_tokens=16 --set eval.greedy=false)
  for s in "$@"; do sets+=(--set "$s"); done
  duel sweep launch/configs/recipe-r13.yaml --strategies ee_ts --seeds 100,101,102,103 \
    --parallel "${PARALLEL:-2}" "${sets[@]}" --out "runs/tuning13/$task-ee-$name"
}
for task in sort style; do
  run E4 "$task" replay.updates=4
  run L2 "$task" optim.lr=1e-4
done

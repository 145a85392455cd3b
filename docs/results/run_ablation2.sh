#!/usr/bin/env bash
# Ablation for the second-round sweeps (docs/results/README.md, "Second round"): is it the pair
# choice or the ERM's extra labels? STRATEGY with mixed preference learning (the same settings as
# ee_ts/bai_ts in run_final2.sh) on seeds 0-4, recipe-sea.yaml.
#   bash docs/results/run_ablation2.sh TASK passive "mixed.gamma=0.75 mixed.burn_in=5 eval.every=20" NAME
set -euo pipefail
task=$1; strategy=$2; sets=$3; name=$4
args=()
for kv in $sets; do args+=(--set "$kv"); done
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-sea.yaml --strategies "$strategy" --seeds 0,1,2,3,4 \
    --set task="$task" "${args[@]}" --parallel "${PARALLEL:-1}" --out "runs/sweeps2/$task-$name" && break
done

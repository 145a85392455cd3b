#!/usr/bin/env bash
# Issue 14, fifth round: is `sort`'s x0.47 an artefact of where passive's final lies at budget 640
# (inside the 0.50-0.53 plateau every mixed run crosses)? The round-4 runs again at a doubled
# budget, nothing else changed: passive, ee_ts with the round-4 setting (run_final4.sh) and the
# ablation (passive with the same ERM labels), seeds 0-4 of launch/configs/recipe-sea.yaml.
# The budget is chosen after seeing the 640-query results: a post-hoc check, not a recipe.
#   bash docs/results/run_budget.sh sort [BUDGET]      # runs/budgetBUDGET/TASK -> docs/results/TASK-budgetBUDGET
set -euo pipefail
task=$1; budget=${2:-1280}
R4="mixed.gamma=0.875 mixed.burn_in=2 eval.every=40 loss.beta=0.2 mixed.min_confidence=0.75 mixed.unconfident=drop"
out="runs/budget$budget/$task"
extra=(--set budget="$budget")
if [ "$task" = style ]; then extra+=(--set sampling.max_new_tokens=16 --set eval.greedy=false); fi
sweep() {  # sweep STRATEGY NAME KEY=VALUE...
  local strategy=$1 name=$2; shift 2
  local args=(); for kv in "$@"; do args+=(--set "$kv"); done
  for attempt in 1 2 3; do
    duel sweep launch/configs/recipe-sea.yaml --strategies "$strategy" --seeds 0,1,2,3,4 \
      --set task="$task" "${extra[@]}" "${args[@]}" --parallel "${PARALLEL:-2}" --out "$out/$name" && break
  done
}
sweep passive passive
sweep ee_ts ee_ts-r4 $R4
sweep passive passive-r4 $R4
duel report "$out/passive" "$out/ee_ts-r4" "$out/passive-r4" --baseline "passive loss.beta=0.1" --out "docs/results/$task-budget$budget"

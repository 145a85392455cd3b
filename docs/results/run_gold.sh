#!/usr/bin/env bash
# Issue 14, fifth round: the ceiling of the pair choice. `erm.features: gold` gives the ERM the
# task's gold reward as its one feature (a diagnostic: an ERM that can know what the oracle
# knows). If the pair choice saves no queries even then, better features cannot make it; if it
# does, the features are what limits it. Seeds 0-4 of launch/configs/recipe-sea.yaml, nothing
# tuned; baseline: passive of runs/sweeps2/TASK (the same recipe and seeds).
#   bash docs/results/run_gold.sh sort        # runs/gold/TASK/NAME -> docs/results/TASK-gold
set -euo pipefail
task=$1
R4="mixed.gamma=0.875 mixed.burn_in=2 eval.every=40 loss.beta=0.2 mixed.min_confidence=0.75 mixed.unconfident=drop"
out="runs/gold/$task"
extra=(--set erm.features=gold)
if [ "$task" = style ]; then extra+=(--set sampling.max_new_tokens=16 --set eval.greedy=false); fi
sweep() {  # sweep STRATEGY NAME KEY=VALUE...
  local strategy=$1 name=$2; shift 2
  local args=(); for kv in "$@"; do args+=(--set "$kv"); done
  for attempt in 1 2 3; do
    duel sweep launch/configs/recipe-sea.yaml --strategies "$strategy" --seeds 0,1,2,3,4 \
      --set task="$task" "${extra[@]}" "${args[@]}" --parallel "${PARALLEL:-2}" --out "$out/$name" && break
  done
}
sweep ee_ts ee_ts                 # the pair choice alone, no ERM labels
sweep bai_ts bai_ts
sweep ee_ts ee_ts-r4 $R4          # with the round-4 ERM labels
sweep passive passive-r4 $R4      # the same labels, random pairs
# beside them: round 2's passive (the baseline), round 4's ee_ts (runs/sweeps5, run_final4.sh) and its
# ablation (runs/sweeps2/TASK-passive-mixed-r4), and on sort round 2's ee_ts without ERM labels
plain=(); [ "$task" = sort ] && plain=(runs/sweeps2/sort-ee_ts-plain)
duel report runs/sweeps2/"$task"/passive-s{0,1,2,3,4} "runs/sweeps5/$task" "runs/sweeps2/$task-passive-mixed-r4" \
  "${plain[@]}" "$out/ee_ts" "$out/bai_ts" "$out/ee_ts-r4" "$out/passive-r4" \
  --baseline "passive erm.features=hidden eval.every=5" --out "docs/results/$task-gold"

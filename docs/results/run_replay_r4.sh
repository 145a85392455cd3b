#!/usr/bin/env bash
# Issue 14, fifth round, follow-up of run_gold_replay.sh: passive gains x3 from replay.updates=3
# (the learner is step-limited). Is mixed preference learning still faster than passive when both
# replay? ee_ts with round 4's setting (run_final4.sh) plus replay.updates=3, against passive with
# replay.updates=3 (run_gold_replay.sh). Seeds 0-4: exploratory, chosen after seeing results, not a
# recipe (a recipe would be tuned on seeds 100+ and run fresh).
#   bash docs/results/run_replay_r4.sh sort     # runs/replay/TASK/... -> docs/results/TASK-replay
set -euo pipefail
task=$1; updates=${UPDATES:-3}
R4="mixed.gamma=0.875 mixed.burn_in=2 eval.every=40 loss.beta=0.2 mixed.min_confidence=0.75 mixed.unconfident=drop"
extra=(--set "replay.updates=$updates")
if [ "$task" = style ]; then extra+=(--set sampling.max_new_tokens=16 --set eval.greedy=false); fi
sweep() {  # sweep STRATEGY NAME KEY=VALUE...
  local strategy=$1 name=$2; shift 2
  local args=(); for kv in "$@"; do args+=(--set "$kv"); done
  [ -d "runs/replay/$task/$name" ] && return 0
  for attempt in 1 2 3; do
    duel sweep launch/configs/recipe-sea.yaml --strategies "$strategy" --seeds 0,1,2,3,4 --set task="$task" \
      "${extra[@]}" "${args[@]}" --parallel "${PARALLEL:-2}" --out "runs/replay/$task/$name" && break
  done
}
sweep passive "passive-replay$updates"
sweep ee_ts "ee_ts-r4-replay$updates" $R4
duel report runs/sweeps2/"$task"/passive-s{0,1,2,3,4} "runs/sweeps5/$task" "runs/replay/$task/passive-replay$updates" \
  "runs/replay/$task/ee_ts-r4-replay$updates" --baseline "passive eval.every=5 loss.beta=0.1 mixed.burn_in=0 mixed.gamma=0.0 mixed.min_confidence=0.5 mixed.unconfident=ask replay.updates=$updates" \
  --out "docs/results/$task-replay"

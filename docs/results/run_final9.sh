#!/usr/bin/env bash
# The ninth-round issue-14 finals (docs/results/README.md, "Ninth round"; plan:
# docs/results/tuning8/PLAN.md): round 8's recipe (round 7's + 8 candidates) with one paid pair
# per step and 2 replayed updates, seeds 0-4 of launch/configs/recipe-sea.yaml, ee_ts and bai_ts.
# The baseline, passive + replay 10, is round 7's final runs (runs/sweeps7/TASK; deterministic).
#   bash docs/results/run_final9.sh sort|style|arithmetic   # runs/sweeps9/TASK -> report9.sh
set -euo pipefail
task=$1
R9="mixed.burn_in=2 loss.beta=0.2 mixed.min_confidence=0.75 mixed.unconfident=drop erm.features=hidden_probs candidates=8 resources.generators=1 mixed.gamma=0.9375 eval.every=80 replay.updates=2"
STRATEGIES=${STRATEGIES:-ee_ts,bai_ts}
extra=()
if [ "$task" = style ]; then extra=(--set sampling.max_new_tokens=16 --set eval.greedy=false); fi
per=()
for s in ${STRATEGIES//,/ }; do
  case $s in
    ee_ts|bai_ts) for kv in $R9; do per+=(--set-for "$s:$kv"); done ;;
    *) echo "run_final9.sh: no setting for strategy $s" >&2; exit 2 ;;
  esac
done
for attempt in 1 2 3; do  # a sweep run again skips its complete runs and resumes partial ones
  duel sweep launch/configs/recipe-sea.yaml --strategies "$STRATEGIES" --seeds 0,1,2,3,4 \
    --set task="$task" "${extra[@]}" "${per[@]}" --parallel "${PARALLEL:-2}" --out "runs/sweeps9/$task" && break
done

#!/usr/bin/env bash
# The eighth-round issue-14 finals (docs/results/README.md, "Eighth round"; plan:
# docs/results/tuning7/PLAN.md): round 7's recipe with 8 candidates per prompt, seeds 0-4 of
# launch/configs/recipe-sea.yaml, ee_ts and bai_ts. The baseline, passive + replay 10, is round
# 7's final runs (runs/sweeps7/TASK, from run_final7.sh; deterministic).
#   bash docs/results/run_final8.sh sort|style|arithmetic   # runs/sweeps8/TASK -> report8.sh
# run_final9.sh runs this same sweep with its own settings (ACTIVE) and sweep directory (OUT).
set -euo pipefail
task=$1
R7="mixed.gamma=0.875 mixed.burn_in=2 eval.every=40 loss.beta=0.2 mixed.min_confidence=0.75 mixed.unconfident=drop replay.updates=3 erm.features=hidden_probs"
ACTIVE=${ACTIVE:-"$R7 candidates=8"}
OUT=${OUT:-sweeps8}
STRATEGIES=${STRATEGIES:-ee_ts,bai_ts}
extra=()
if [ "$task" = style ]; then extra=(--set sampling.max_new_tokens=16 --set eval.greedy=false); fi
per=()
for s in ${STRATEGIES//,/ }; do
  case $s in
    ee_ts|bai_ts) for kv in $ACTIVE; do per+=(--set-for "$s:$kv"); done ;;
    *) echo "$(basename "$0"): no setting for strategy $s" >&2; exit 2 ;;
  esac
done
for attempt in 1 2 3; do  # a sweep run again skips its complete runs and resumes partial ones
  duel sweep launch/configs/recipe-sea.yaml --strategies "$STRATEGIES" --seeds 0,1,2,3,4 \
    --set task="$task" "${extra[@]}" "${per[@]}" --parallel "${PARALLEL:-2}" --out "runs/$OUT/$task" && break
done

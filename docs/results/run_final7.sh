#!/usr/bin/env bash
# The seventh-round issue-14 finals (docs/results/README.md, "Seventh round"; plan:
# docs/results/tuning6/PLAN.md): round 6's recipe with the ERM reading the starting policy's token
# probabilities beside its hidden mean (erm.features: hidden_probs), seeds 0-4 of
# launch/configs/recipe-sea.yaml:
#   passive        replay.updates=10 (round 6's baseline, rerun: deterministic, equals round 6's)
#   ee_ts, bai_ts  round 4's mixed setting + replay.updates=3 + erm.features=hidden_probs
# apl and xpo never read the ERM: their round-6 runs (run_final6.sh) stand for this round.
#   bash docs/results/run_final7.sh sort|style|arithmetic   # runs/sweeps7/TASK -> report7.sh
set -euo pipefail
task=$1
R4="mixed.gamma=0.875 mixed.burn_in=2 eval.every=40 loss.beta=0.2 mixed.min_confidence=0.75 mixed.unconfident=drop"
STRATEGIES=${STRATEGIES:-passive,ee_ts,bai_ts}
extra=()
if [ "$task" = style ]; then extra=(--set sampling.max_new_tokens=16 --set eval.greedy=false); fi
per=()
for s in ${STRATEGIES//,/ }; do
  case $s in
    passive) per+=(--set-for "passive:replay.updates=10") ;;
    ee_ts|bai_ts) for kv in replay.updates=3 erm.features=hidden_probs $R4; do per+=(--set-for "$s:$kv"); done ;;
    *) echo "run_final7.sh: no setting for strategy $s" >&2; exit 2 ;;
  esac
done
for attempt in 1 2 3; do  # a sweep run again skips its complete runs and resumes partial ones
  duel sweep launch/configs/recipe-sea.yaml --strategies "$STRATEGIES" --seeds 0,1,2,3,4 \
    --set task="$task" "${extra[@]}" "${per[@]}" --parallel "${PARALLEL:-2}" --out "runs/sweeps7/$task" && break
done

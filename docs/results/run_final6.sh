#!/usr/bin/env bash
# The sixth-round issue-14 finals (docs/results/README.md, "Sixth round"; plan:
# docs/results/tuning5/PLAN.md): label replay on both sides, fixed on `sort` and `style` seeds
# 100-103 (docs/results/tuning5/), run on seeds 0-4 of launch/configs/recipe-sea.yaml:
#   passive, apl, xpo  replay.updates=$RP (passive's best learner on the tuning seeds: 10; xpo is
#                      XPO's pair, one policy sample against one reference sample, with the DPO loss)
#   ee_ts, bai_ts      round 4's mixed setting + replay.updates=$EE_RP (3 on the tuning seeds)
#   bash docs/results/run_final6.sh sort|style|arithmetic   # runs/sweeps6/TASK -> docs/results/TASK-sweeps6
set -euo pipefail
task=$1
RP=${RP:-10}          # passive's learner, chosen on the tuning seeds (docs/results/tuning5)
EE_RP=${EE_RP:-3}     # the active recipe's replay.updates, chosen on the tuning seeds
R4="mixed.gamma=0.875 mixed.burn_in=2 eval.every=40 loss.beta=0.2 mixed.min_confidence=0.75 mixed.unconfident=drop"
STRATEGIES=${STRATEGIES:-passive,ee_ts,bai_ts,xpo,apl}
extra=()
if [ "$task" = style ]; then extra=(--set sampling.max_new_tokens=16 --set eval.greedy=false); fi
per=()
for s in ${STRATEGIES//,/ }; do
  case $s in
    passive|apl|xpo) per+=(--set-for "$s:replay.updates=$RP") ;;
    ee_ts|bai_ts) per+=(--set-for "$s:replay.updates=$EE_RP"); for kv in $R4; do per+=(--set-for "$s:$kv"); done ;;
    *) echo "run_final6.sh: no setting for strategy $s" >&2; exit 2 ;;
  esac
done
for attempt in 1 2 3; do  # a sweep run again skips its complete runs and resumes partial ones
  duel sweep launch/configs/recipe-sea.yaml --strategies "$STRATEGIES" --seeds 0,1,2,3,4 \
    --set task="$task" "${extra[@]}" "${per[@]}" --parallel "${PARALLEL:-2}" --out "runs/sweeps6/$task" && break
done

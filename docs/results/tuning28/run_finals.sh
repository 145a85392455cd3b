#!/usr/bin/env bash
# Round 28's finals (PLAN.md), only for the candidate the rule chose: passive on `arithmetic` seeds 0-9.
#   bash docs/results/tuning28/run_finals.sh CL3|LS1 && python docs/results/tuning28/against.py CL3|LS1
set -euo pipefail
case $1 in CL3) set_=optim.clip_norm=0.3 ;; LS1) set_=loss.label_smoothing=0.1 ;; *) echo "CL3 or LS1" >&2; exit 2 ;; esac
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-r13.yaml --set task=arithmetic --set "$set_" --strategies passive \
    --seeds 0-9 --parallel "${PARALLEL:-2}" --out "runs/tuning28/final-arithmetic-$1" && break
done

#!/usr/bin/env bash
# Round 21's finals (PLAN.md), only for the strategies rule.py says adopt A64 (default both;
# STRATEGIES=ee_ts to run one): 64 pairs per replayed update on the shipped report seeds.
#   bash docs/results/tuning21/run_finals.sh && python docs/results/tuning21/against.py
set -euo pipefail
strategies=${STRATEGIES:-ee_ts,bai_ts}
sets=()
for s in ${strategies//,/ }; do sets+=(--set-for "$s:replay.batch=64"); done
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-r13.yaml --set task=arithmetic "${sets[@]}" --strategies "$strategies" \
    --seeds 0-9 --parallel "${PARALLEL:-2}" --out runs/tuning21/final-arithmetic-A64 && break
done
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-r13.yaml --set task=sort "${sets[@]}" --strategies "$strategies" \
    --seeds 0-4 --parallel "${PARALLEL:-2}" --out runs/tuning21/final-sort-A64 && break
done

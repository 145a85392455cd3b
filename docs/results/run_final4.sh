#!/usr/bin/env bash
# The fourth-round issue-14 finals (docs/results/README.md, "Fourth round"): ee_ts (and bai_ts,
# STRATEGIES=bai_ts OUT=sweeps5b) with the setting tuned on `sort` and `style` seeds 100-101
# (docs/results/tuning4/): ERM labels only where the ensemble is >= 0.75 sure (the others
# dropped), burn-in 2 steps, loss.beta 0.2, mixed.gamma 0.875; seeds 0-4 of
# launch/configs/recipe-sea.yaml. Baselines: round 2's runs/sweeps2/TASK (run_final2.sh).
#   bash docs/results/run_final4.sh sort|style|arithmetic     # runs/sweeps5/TASK -> docs/results/TASK-sweeps5
set -euo pipefail
export OUT=${OUT:-sweeps5} STRATEGIES=${STRATEGIES:-ee_ts}
export MIXED="mixed.gamma=0.875 mixed.burn_in=2 eval.every=40 loss.beta=0.2 mixed.min_confidence=0.75 mixed.unconfident=drop"
exec bash "$(dirname "$0")/run_final3.sh" "$1"

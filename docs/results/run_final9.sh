#!/usr/bin/env bash
# The ninth-round issue-14 finals (docs/results/README.md, "Ninth round"; plan:
# docs/results/tuning8/PLAN.md): round 8's recipe (round 7's + 8 candidates) with one paid pair
# per step and 2 replayed updates, seeds 0-4 of launch/configs/recipe-sea.yaml, ee_ts and bai_ts
# (STRATEGIES picks), run by run_final8.sh's sweep. The baseline, passive + replay 10, is round 7's
# final runs (runs/sweeps7/TASK; deterministic).
#   bash docs/results/run_final9.sh sort|style|arithmetic   # runs/sweeps9/TASK -> report9.sh
set -euo pipefail
R9="mixed.burn_in=2 loss.beta=0.2 mixed.min_confidence=0.75 mixed.unconfident=drop erm.features=hidden_probs candidates=8 resources.generators=1 mixed.gamma=0.9375 eval.every=80 replay.updates=2"
ACTIVE="$R9" OUT=sweeps9 exec bash "$(dirname "$0")/run_final8.sh" "$@"

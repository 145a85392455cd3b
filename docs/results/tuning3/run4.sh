#!/usr/bin/env bash
# Fourth tuning round for issue 14 (2026-12-02, fourth session): tuning3/run.sh into
# runs/tuning4/NAME and docs/results/tuning4/NAME. Usage:
#   bash docs/results/tuning3/run4.sh NAME TASK STRATEGIES SEEDS [k=v ...]
ROUND=tuning4 exec bash "$(dirname "$0")/run.sh" "$@"

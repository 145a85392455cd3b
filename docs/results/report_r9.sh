#!/usr/bin/env bash
# docs/results/r9/TASK/ (README "Results") from runs already on disk, where run_r9.sh was not run to
# the end: the same 25 runs as recipe-r9.yaml's sweep (tests/launch/test_presets.py: the same
# configs), made by run_final7.sh (passive), run_final6.sh (xpo, apl) and run_final9.sh (ee_ts,
# bai_ts). run_r9.sh on `sort` reproduced its 25 earlier runs eval for eval (the runs are
# deterministic per seed).
#   bash docs/results/report_r9.sh arithmetic|style   # -> docs/results/r9/TASK/ (since round 13 the shipped
#   docs/results/TASK/ are recipe-r13's: run_r13.sh, report_r13.sh)
set -euo pipefail
task=$1
dirs=()
for s in 0 1 2 3 4; do
  dirs+=("runs/sweeps7/$task/passive-s$s" "runs/sweeps9/$task/ee_ts-s$s" "runs/sweeps9/$task/bai_ts-s$s"
         "runs/sweeps6/$task/xpo-s$s" "runs/sweeps6/$task/apl-s$s")
done
duel report "${dirs[@]}" --out "docs/results/r9/$task"

#!/usr/bin/env bash
# Issue 14's recipe after round 13 (launch/configs/recipe-r13.yaml: recipe-r9 with passive, xpo and
# apl at loss.beta 0.2): all five strategies in one sweep, seeds 0-4, then the report in
# docs/results/TASK/ (README "Results"; `reverse`, the held-out task: docs/results/heldout/report-r13).
# About 25 minutes per task on 2 quiet CPU cores.
#   bash docs/results/run_r13.sh sort|style|arithmetic|reverse    # runs/r13/TASK -> the report
#   STRATEGIES=xpo,apl bash docs/results/run_r13.sh TASK            # only some strategies, no report
# The runs are deterministic per seed: the sweep's passive, ee_ts and bai_ts runs are those of
# round 12 (runs/b2) and round 9 (runs/sweeps9, runs/final, runs/heldout); report_r13.sh makes the
# same report from those where they are on disk.
set -euo pipefail
task=$1
sets=()
case $task in
  style) sets+=(--set task=style --set sampling.max_new_tokens=16 --set eval.greedy=false) ;;
  reverse) sets+=(--set task=reverse_task:Reverse)
           export PYTHONPATH=docs/results/heldout${PYTHONPATH:+:$PYTHONPATH}
           export XLA_FLAGS=${XLA_FLAGS:---xla_backend_optimization_level=0} ;;  # as the shipped runs
  *) sets+=(--set "task=$task") ;;
esac
for attempt in 1 2 3; do  # a sweep run again skips its complete runs and resumes partial ones
  duel sweep launch/configs/recipe-r13.yaml "${sets[@]}" \
    --strategies "${STRATEGIES:-passive,ee_ts,bai_ts,xpo,apl}" --seeds 0,1,2,3,4 \
    --parallel "${PARALLEL:-2}" --out "runs/r13/$task" && break
done
[ -n "${STRATEGIES:-}" ] && exit 0
out=docs/results/$task; [ "$task" = reverse ] && out=docs/results/heldout/report-r13
duel report "runs/r13/$task" --out "$out"

#!/usr/bin/env bash
# The report of the `dedup` runs (run.sh) and their pair statistics -> docs/results/heldout2/report/
# (seeds 0-4, all five strategies); SEEDS=0-9: passive, ee_ts, bai_ts over seeds 0-9 ->
# docs/results/heldout2/report-seeds10/ (the plan's amendment)
#   bash docs/results/heldout2/report.sh
set -euo pipefail
export PYTHONPATH=docs/results/heldout2${PYTHONPATH:+:$PYTHONPATH}
if [ "${SEEDS:-0-4}" = 0-9 ]; then
  mapfile -t dirs < <(ls -d runs/heldout2/dedup/{passive,ee_ts,bai_ts}-s* | sort -V)
  bash docs/results/report_runs.sh docs/results/heldout2/report-seeds10 runs/heldout2/dedup-combined10 "${dirs[@]}"
else
  mapfile -t dirs < <(ls -d runs/heldout2/dedup/*-s[0-4] | sort -V)
  bash docs/results/report_runs.sh docs/results/heldout2/report runs/heldout2/dedup-combined "${dirs[@]}"
fi

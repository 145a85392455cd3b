#!/usr/bin/env bash
# The report of the `dedup` runs (run.sh) and their pair statistics -> docs/results/heldout2/report/
#   bash docs/results/heldout2/report.sh
set -euo pipefail
export PYTHONPATH=docs/results/heldout2${PYTHONPATH:+:$PYTHONPATH}
mapfile -t dirs < <(ls -d runs/heldout2/dedup/*-s* | sort -V)
bash docs/results/report_runs.sh docs/results/heldout2/report runs/heldout2/dedup-combined "${dirs[@]}"

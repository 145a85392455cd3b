#!/usr/bin/env bash
# Reports and jitter tables of round 28's tuning runs (run.sh), then round 18's rule against its B2.
#   bash docs/results/tuning28/report.sh
set -euo pipefail
here=$(dirname "$0")
for d in runs/tuning28/*-pas-*; do
  name=$(basename "$d")
  duel report "$d" --out "$here/$name" > /dev/null
  python "$here/../tuning10/jitter.py" "$d" > "$here/$name/jitter.md"
done
python "$here/../tuning18/rule.py" --variants B2:"$here/../tuning18" CL3:runs/tuning28 LS1:runs/tuning28 | tee "$here/rule.txt"

#!/usr/bin/env bash
# Reports and jitter tables of round 18's tuning runs (run.sh), then the rule's table (rule.py).
#   bash docs/results/tuning18/report.sh
set -euo pipefail
here=$(dirname "$0")
for d in runs/tuning18/*-pas-B*; do
  name=$(basename "$d")
  duel report "$d" --out "$here/$name" > /dev/null
  python "$here/../tuning10/jitter.py" "$d" > "$here/$name/jitter.md"
done
python "$here/rule.py" runs/tuning18 | tee "$here/rule.txt"

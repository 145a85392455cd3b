#!/usr/bin/env bash
# Reports and jitter tables of round 19's tuning runs (run.sh), then the rule's table against
# round 18's B2 runs (rule.py).
#   bash docs/results/tuning19/report.sh
set -euo pipefail
here=$(dirname "$0")
for d in runs/tuning19/*-pas-WU*; do
  name=$(basename "$d")
  duel report "$d" --out "$here/$name" > /dev/null
  python "$here/../tuning10/jitter.py" "$d" > "$here/$name/jitter.md"
done
python "$here/../tuning18/rule.py" --variants B2:runs/tuning18 WU8:runs/tuning19 WU16:runs/tuning19 | tee "$here/rule.txt"

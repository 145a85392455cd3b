#!/usr/bin/env bash
# Reports and jitter tables of round 20's tuning runs (run.sh), the determinism check of B2 against
# round 18, then the rule's table against round 18's B2 (read from its reports).
#   bash docs/results/tuning20/report.sh
set -euo pipefail
here=$(dirname "$0")
for d in runs/tuning20/*-pas-RB*; do
  name=$(basename "$d")
  duel report "$d" --out "$here/$name" > /dev/null
  python "$here/../tuning10/jitter.py" "$d" > "$here/$name/jitter.md"
done
python "$here/check_b2.py" runs/tuning20/check-B2 "$here/../tuning18/arithmetic-pas-B2/report.json" | tee "$here/check_b2.txt"
python "$here/../tuning18/rule.py" --variants B2:"$here/../tuning18" RB32:runs/tuning20 RB64:runs/tuning20 | tee "$here/rule.txt"

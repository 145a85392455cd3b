#!/usr/bin/env bash
# The report of runs taken from several sweeps, and their pair statistics (rounds 25 and 27):
# `duel report` over the run directories, then bench/pair_stats.py, which reads a sweep directory,
# over COMBINED, a directory made anew of links to the runs.
#   bash docs/results/report_runs.sh OUT COMBINED RUN_DIR...
set -euo pipefail
out=$1 combined=$2
shift 2
duel report "$@" --out "$out"
rm -rf "$combined"; mkdir -p "$combined"
for d in "$@"; do ln -s "$PWD/$d" "$combined/$(basename "$d")"; done
python bench/pair_stats.py "$combined" --top 5 --json "$out/pair_stats.json" > "$out/pair_stats.md"

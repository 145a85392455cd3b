#!/usr/bin/env bash
# Ninth round: reports over the tuning runs (seeds 100-103) against passive + replay 10 (round 7's
# tuning runs), beside rounds 7 and 8's ee_ts candidates.
#   bash docs/results/tuning8/report.sh   # -> docs/results/tuning8/{sort,style}-combined
set -euo pipefail
B="passive candidates=4 erm.features=hidden eval.every=5 loss.beta=0.1 mixed.burn_in=0 mixed.gamma=0.0 mixed.min_confidence=0.5 mixed.unconfident=ask replay.updates=10"
for task in sort style; do
  duel report runs/tuning6/"$task"-pas-rp10 runs/tuning6/"$task"-ee-r4-rp3-hp runs/tuning7/"$task"-* \
    runs/tuning8/"$task"-* --baseline "$B" --out "docs/results/tuning8/$task-combined"
done
python bench/pair_stats.py runs/tuning8/*-ee-* runs/tuning7/*-ee-* --json docs/results/tuning8/pair_stats.json \
  > docs/results/tuning8/pair_stats.md

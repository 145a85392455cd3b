#!/usr/bin/env bash
# Seventh round: the reports over the tuning runs (seeds 100-103), baseline passive + replay 10.
#   bash docs/results/tuning6/report.sh   # -> docs/results/tuning6/{sort,style}-combined
set -euo pipefail
B="passive erm.features=hidden eval.every=5 loss.beta=0.1 mixed.burn_in=0 mixed.gamma=0.0 mixed.min_confidence=0.5 mixed.unconfident=ask replay.updates=10"
for task in sort style; do
  duel report runs/tuning6/"$task"-* --baseline "$B" --out "docs/results/tuning6/$task-combined"
done
# how right the ERM's labels are per run group (erm_label_agree; the "after the finals" table)
python bench/pair_stats.py runs/tuning6/*-ee-* --json docs/results/tuning6/pair_stats.json \
  > docs/results/tuning6/pair_stats.md

#!/usr/bin/env bash
# Sixth round: the reports over the tuning runs (seeds 100-103), baseline passive + replay 10.
#   bash docs/results/tuning5/report.sh   # -> docs/results/tuning5/{sort,style}-combined
set -euo pipefail
B="passive eval.every=5 loss.beta=0.1 mixed.burn_in=0 mixed.gamma=0.0 mixed.min_confidence=0.5 mixed.unconfident=ask replay.updates=10"
duel report runs/tuning3/sort-pas runs/tuning4/sort-pas-s102 runs/tuning5/sort-* \
  --baseline "$B" --out docs/results/tuning5/sort-combined
duel report runs/tuning3/style-pas runs/tuning5/style-* \
  --baseline "$B" --out docs/results/tuning5/style-combined

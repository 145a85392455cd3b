#!/usr/bin/env bash
# Sixteenth round (docs/results/tuning16/PLAN.md): launch/configs/recipe-r16-style.yaml, all five
# strategies on `style` seeds 5-9, its report in docs/results/style-r16/; then D (recipe-r13's ee_ts)
# on the same seeds for the same-seed difference. About 55 minutes on 2 quiet CPU cores.
# A sweep run again skips its complete runs and resumes partial ones.
#   bash docs/results/tuning16/run_finals.sh; python docs/results/tuning16/finals.py
set -euo pipefail
SEEDS=5,6,7,8,9
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-r16-style.yaml --strategies passive,ee_ts,bai_ts,xpo,apl \
    --seeds $SEEDS --parallel "${PARALLEL:-2}" --out runs/r16/style && break
done
out=docs/results/style-r16
duel report runs/r16/style --out "$out"
python bench/pair_stats.py runs/r16/style --top 6 --json "$out/pair_stats.json" > "$out/pair_stats.md"
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-r13.yaml --set task=style --set sampling.max_new_tokens=16 \
    --set eval.greedy=false --strategies ee_ts --seeds $SEEDS --parallel "${PARALLEL:-2}" \
    --out runs/r16/style-D && break
done

#!/usr/bin/env bash
# Fourteenth round, part 4 (docs/results/tuning14/PLAN.md): ee_ts of recipe-r13 with mixed.pair=mean (MP),
# tuning seeds 100-103 of `arithmetic`, `sort` and `style`, plus passive (B2) and D on `sort` and `style`
# (`arithmetic`'s are part 1's). A complete run is skipped, so the script can be rerun.
#   bash docs/results/tuning14/run_mp.sh; python docs/results/tuning14/compare.py TASK MP
set -euo pipefail
S=100,101,102,103
sweep() { duel sweep launch/configs/recipe-r13.yaml --seeds $S --parallel "${PARALLEL:-2}" "$@"; }
STYLE=(--set task=style --set sampling.max_new_tokens=16 --set eval.greedy=false)
sweep --set task=arithmetic --set mixed.pair=mean --strategies ee_ts --out runs/tuning14/arithmetic-MP
sweep --set task=sort --strategies passive,ee_ts --out runs/tuning14/sort-base
sweep --set task=sort --set mixed.pair=mean --strategies ee_ts --out runs/tuning14/sort-MP
sweep "${STYLE[@]}" --strategies passive,ee_ts --out runs/tuning14/style-base
sweep "${STYLE[@]}" --set mixed.pair=mean --strategies ee_ts --out runs/tuning14/style-MP

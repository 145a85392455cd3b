#!/usr/bin/env bash
# Fifteenth round, amendment (docs/results/tuning15/PLAN.md): W on `style` seeds 0-4, exploratory (W did
# not qualify as a recipe). passive (B2) and D are recipe-r13's shipped style runs, rerun here (runs are
# deterministic per seed; the script checks them against docs/results/style/report.json), W is D with
# erm.features=hidden_probs_words erm.words_weight=0.5. A complete run is skipped, so it can be rerun.
#   bash docs/results/tuning15/run_style_finals.sh; python docs/results/tuning15/style_finals.py
set -euo pipefail
STYLE=(--set task=style --set sampling.max_new_tokens=16 --set eval.greedy=false)
sweep() { duel sweep launch/configs/recipe-r13.yaml --seeds 0,1,2,3,4 --parallel "${PARALLEL:-2}" "${STYLE[@]}" "$@"; }
sweep --strategies passive,ee_ts --out runs/tuning15/style-base
sweep --set erm.features=hidden_probs_words --set erm.words_weight=0.5 --strategies ee_ts --out runs/tuning15/style-W

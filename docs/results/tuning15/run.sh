#!/usr/bin/env bash
# Fifteenth round, part 2 (docs/results/tuning15/PLAN.md): ee_ts of recipe-r13 with the bag of words
# beside its features (W: erm.features=hidden_probs_words, erm.words_weight=0.5), tuning seeds
# 100-103 of `arithmetic`, `sort` and `style`. It is judged against round 14's passive (B2) and D of
# the same seeds, so its runs sit beside them (runs/tuning14/TASK-base, from
# docs/results/tuning14/run.sh and run_mp.sh). A complete run is skipped, so the script can be rerun.
#   bash docs/results/tuning15/run.sh; python docs/results/tuning14/compare.py rule W
set -euo pipefail
S=100,101,102,103
W=(--set erm.features=hidden_probs_words --set erm.words_weight=0.5 --strategies ee_ts)
sweep() { duel sweep launch/configs/recipe-r13.yaml --seeds $S --parallel "${PARALLEL:-2}" "$@"; }
sweep --set task=arithmetic "${W[@]}" --out runs/tuning14/arithmetic-W
sweep --set task=sort "${W[@]}" --out runs/tuning14/sort-W
sweep --set task=style --set sampling.max_new_tokens=16 --set eval.greedy=false "${W[@]}" --out runs/tuning14/style-W

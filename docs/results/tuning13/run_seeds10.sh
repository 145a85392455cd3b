#!/usr/bin/env bash
# Round 13's amendment (docs/results/tuning13/PLAN.md): seeds 5-9 of recipe-r13 for passive and
# ee_ts on `style`, passive and bai_ts on `arithmetic`; then 10-seed reports with seeds 0-4 of the
# same strategies (report_r13.sh's runs).
#   bash docs/results/tuning13/run_seeds10.sh   # runs/r13/TASK-s5 -> docs/results/tuning13/TASK-seeds10/
set -euo pipefail
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-r13.yaml --set task=style --set sampling.max_new_tokens=16 \
    --set eval.greedy=false --strategies passive,ee_ts --seeds 5,6,7,8,9 --parallel "${PARALLEL:-2}" \
    --out runs/r13/style-s5 && break
done
for attempt in 1 2 3; do
  duel sweep launch/configs/recipe-r13.yaml --set task=arithmetic --strategies passive,bai_ts \
    --seeds 5,6,7,8,9 --parallel "${PARALLEL:-2}" --out runs/r13/arithmetic-s5 && break
done
duel report runs/b2/style/passive-s{0,1,2,3,4} runs/sweeps9/style/ee_ts-s{0,1,2,3,4} runs/r13/style-s5 \
  --out docs/results/tuning13/style-seeds10
duel report runs/b2/arithmetic/passive-s{0,1,2,3,4} runs/sweeps9/arithmetic/bai_ts-s{0,1,2,3,4} \
  runs/r13/arithmetic-s5 --out docs/results/tuning13/arithmetic-seeds10

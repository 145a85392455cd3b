#!/usr/bin/env bash
# Seventh-round reports (docs/results/README.md, "Seventh round"): the finals of run_final7.sh
# (runs/sweeps7/TASK: passive + replay 10, ee_ts and bai_ts with erm.features=hidden_probs) beside
# round 6's ee_ts (hidden features), apl and xpo (runs/sweeps6/TASK, rerun with
# `STRATEGIES=ee_ts bash docs/results/run_final6.sh TASK`, `STRATEGIES=apl,xpo ...`: deterministic,
# the same runs as round 6's) where they exist; the baseline is passive + replay 10.
#   bash docs/results/report7.sh sort|style|arithmetic   # -> docs/results/TASK-sweeps7/
set -euo pipefail
task=$1
B="passive erm.features=hidden eval.every=5 loss.beta=0.1 mixed.burn_in=0 mixed.gamma=0.0 mixed.min_confidence=0.5 mixed.unconfident=ask replay.updates=10"
dirs=("runs/sweeps7/$task")
for s in ee_ts apl xpo; do
  for seed in 0 1 2 3 4; do
    [ -e "runs/sweeps6/$task/$s-s$seed/config.yaml" ] && dirs+=("runs/sweeps6/$task/$s-s$seed")
  done
done
# the ablation: passive with the same hidden_probs ERM labels and replay 3 (run for all three tasks:
#   PARALLEL=2 bash docs/results/run_ablation2.sh sort passive "$R4 replay.updates=3 erm.features=hidden_probs" \
#     passive-mixed-r4-rp3-hp   # style: add sampling.max_new_tokens=16 eval.greedy=false)
abl="runs/sweeps2/$task-passive-mixed-r4-rp3-hp"
[ -d "$abl" ] && dirs+=("$abl")
duel report "${dirs[@]}" --baseline "$B" --out "docs/results/$task-sweeps7"
# the same runs against round 6's ee_ts (hidden features): what the features alone change, same seeds
E="ee_ts erm.features=hidden eval.every=40 loss.beta=0.2 mixed.burn_in=2 mixed.gamma=0.875 mixed.min_confidence=0.75 mixed.unconfident=drop replay.updates=3"
if [ -e "runs/sweeps6/$task/ee_ts-s4/config.yaml" ]; then
  duel report "${dirs[@]}" --baseline "$E" --out "docs/results/$task-sweeps7-vs-hidden" > /dev/null
fi
# and against the ablation: is it the pair choice or the ERM's labels?
if [ -d "$abl" ]; then
  A="passive erm.features=hidden_probs eval.every=40 loss.beta=0.2 mixed.burn_in=2 mixed.gamma=0.875 mixed.min_confidence=0.75 mixed.unconfident=drop replay.updates=3"
  duel report "${dirs[@]}" --baseline "$A" --out "docs/results/$task-sweeps7-vs-mixed" > /dev/null
fi
top=5; [ "$task" = style ] && top=6
# the paid pairs and how right the ERM's labels are (erm_label_agree), this round's and round 6's
p6=(); [ -d "runs/sweeps6/$task" ] && p6=("runs/sweeps6/$task")
python bench/pair_stats.py "runs/sweeps7/$task" "${p6[@]}" --top "$top" \
  --json "docs/results/$task-sweeps7/pair_stats.json" > "docs/results/$task-sweeps7/pair_stats.md"

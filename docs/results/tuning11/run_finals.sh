#!/usr/bin/env bash
# Eleventh round's finals (docs/results/tuning11/PLAN.md): passive and ee_ts of the shipped recipe
# (launch/configs/recipe-r9.yaml) evaluated through the Polyak average chosen by the tuning
# (eval.ema=D), seeds 0-4; then the report, the check that every run trained exactly as the shipped
# final of the same seed, and passive's jitter table.
#   bash docs/results/tuning11/run_finals.sh TASK D   # TASK: arithmetic|reverse|sort|style
#   # runs/ema/TASK -> docs/results/ema/TASK/{report.*,same_training.txt,jitter.md}
set -euo pipefail
task=$1; d=$2
here=$(dirname "$0")
sets=(--set "eval.ema=$d")
case $task in
  style) sets+=(--set task=style --set sampling.max_new_tokens=16 --set eval.greedy=false) ;;
  reverse) sets+=(--set task=reverse_task:Reverse)
           export PYTHONPATH=docs/results/heldout${PYTHONPATH:+:$PYTHONPATH}
           export XLA_FLAGS=${XLA_FLAGS:---xla_backend_optimization_level=0} ;;  # as the shipped runs
  *) sets+=(--set "task=$task") ;;
esac
for attempt in 1 2 3; do  # a sweep run again skips its complete runs and resumes partial ones
  duel sweep launch/configs/recipe-r9.yaml "${sets[@]}" --strategies passive,ee_ts --seeds 0,1,2,3,4 \
    --parallel "${PARALLEL:-2}" --out "runs/ema/$task" && break
done
out=docs/results/ema/$task
duel report "runs/ema/$task" --out "$out" > /dev/null
# the shipped finals of the same configs: passive (round 7's runs) and ee_ts (round 9's)
case $task in
  sort) old_p=runs/final/sort; old_e=runs/final/sort ;;
  reverse) old_p=runs/heldout/reverse; old_e=runs/heldout/reverse ;;
  *) old_p=runs/sweeps7/$task; old_e=runs/sweeps9/$task ;;
esac
{
  for s in 0 1 2 3 4; do
    python "$here/same_training.py" "runs/ema/$task/passive-s$s" "$old_p/passive-s$s" | tail -1
    python "$here/same_training.py" "runs/ema/$task/ee_ts-s$s" "$old_e/ee_ts-s$s" | tail -1
  done
} > "$out/same_training.txt"
python "$here/../tuning10/jitter.py" "runs/ema/$task" > "$out/jitter.md"
cat "$out/same_training.txt" "$out/jitter.md"

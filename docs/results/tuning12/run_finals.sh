#!/usr/bin/env bash
# Twelfth round's finals (docs/results/tuning12/PLAN.md): passive of the shipped recipe at
# loss.beta=0.2 (replay 10, the policy's own eval), seeds 0-4 (`reverse`: 0-9), reported against
# the existing round-9 ee_ts finals of the same seeds; then passive's jitter and late KL.
#   bash docs/results/tuning12/run_finals.sh TASK   # TASK: arithmetic|reverse|sort|style
#   # runs/b2/TASK -> docs/results/b2/TASK/{report.*,jitter.md,late_kl.md}
set -euo pipefail
task=$1
here=$(dirname "$0")
seeds=0,1,2,3,4
sets=(--set loss.beta=0.2)
case $task in
  style) sets+=(--set task=style --set sampling.max_new_tokens=16 --set eval.greedy=false) ;;
  reverse) sets+=(--set task=reverse_task:Reverse); seeds=0,1,2,3,4,5,6,7,8,9
           export PYTHONPATH=docs/results/heldout${PYTHONPATH:+:$PYTHONPATH}
           export XLA_FLAGS=${XLA_FLAGS:---xla_backend_optimization_level=0} ;;  # as the shipped runs
  *) sets+=(--set "task=$task") ;;
esac
for attempt in 1 2 3; do  # a sweep run again skips its complete runs and resumes partial ones
  duel sweep launch/configs/recipe-r9.yaml "${sets[@]}" --strategies passive --seeds "$seeds" \
    --parallel "${PARALLEL:-2}" --out "runs/b2/$task" && break
done
case $task in  # the shipped ee_ts finals (round 9's configs)
  sort) ee=(runs/final/sort/ee_ts-s*) ;;
  reverse) ee=(runs/heldout/reverse/ee_ts-s* runs/heldout/reverse-s5/ee_ts-s*) ;;
  *) ee=(runs/sweeps9/$task/ee_ts-s*) ;;
esac
out=docs/results/b2/$task
duel report "runs/b2/$task" "${ee[@]}" --out "$out" > /dev/null
python "$here/../tuning10/jitter.py" "runs/b2/$task" > "$out/jitter.md"
python "$here/../tuning11/late_kl.py" "runs/b2/$task" > "$out/late_kl.md"
cat "$out/jitter.md"

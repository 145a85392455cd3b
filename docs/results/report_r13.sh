#!/usr/bin/env bash
# docs/results/TASK/ (README "Results"; `reverse`: docs/results/heldout/report-r13) for
# launch/configs/recipe-r13.yaml from the runs already on disk, where run_r13.sh was not run whole:
# passive from round 12 (runs/b2, `loss.beta=0.2`), ee_ts and bai_ts from round 9 (their configs
# are unchanged), xpo and apl from `STRATEGIES=xpo,apl bash docs/results/run_r13.sh TASK`
# (tests/launch/test_presets.py: the same configs as recipe-r13's sweep; runs are deterministic
# per seed). Seeds 0-4.
#   bash docs/results/report_r13.sh sort|arithmetic|style|reverse
set -euo pipefail
task=$1
case $task in
  sort) active=runs/final/sort ;;
  reverse) active=runs/heldout/reverse ;;
  *) active=runs/sweeps9/$task ;;
esac
dirs=()
for s in 0 1 2 3 4; do
  dirs+=("runs/b2/$task/passive-s$s" "$active/ee_ts-s$s" "$active/bai_ts-s$s"
         "runs/r13/$task/xpo-s$s" "runs/r13/$task/apl-s$s")
done
out=docs/results/$task; [ "$task" = reverse ] && out=docs/results/heldout/report-r13
duel report "${dirs[@]}" --out "$out"
top=5; [ "$task" = style ] && top=6
# the pair statistics read sweep directories: one of links to the 25 runs
combined=runs/r13/$task-combined; rm -rf "$combined"; mkdir -p "$combined"
for d in "${dirs[@]}"; do ln -s "$PWD/$d" "$combined/$(basename "$d")"; done
python bench/pair_stats.py "$combined" --top "$top" --json "$out/pair_stats.json" > "$out/pair_stats.md"

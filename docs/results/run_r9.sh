#!/usr/bin/env bash
# Issue 14's final recipe in one file (launch/configs/recipe-r9.yaml: round 9's settings for
# ee_ts and bai_ts, passive / xpo / apl with 10 replayed updates): all five strategies in one
# sweep, seeds 0-4, then the report in docs/results/r9/TASK/ (README "Results"). About 25 minutes
# per task on 2 quiet CPU cores.
#   bash docs/results/run_r9.sh sort|style|arithmetic   # runs/final/TASK -> docs/results/r9/TASK/
# The same runs were made before by run_final6/7/9.sh with --set-for (tests/launch/test_presets.py
# checks that both give the same configs); where those runs are on disk, this script also checks
# that every eval of the new runs equals theirs (runs are deterministic per seed).
set -euo pipefail
task=$1
extra=()
if [ "$task" = style ]; then extra=(--set sampling.max_new_tokens=16 --set eval.greedy=false); fi
for attempt in 1 2 3; do  # a sweep run again skips its complete runs and resumes partial ones
  duel sweep launch/configs/recipe-r9.yaml --set task="$task" "${extra[@]}" \
    --strategies passive,ee_ts,bai_ts,xpo,apl --seeds 0,1,2,3,4 --parallel "${PARALLEL:-2}" \
    --out "runs/final/$task" && break
done
duel report "runs/final/$task" --out "docs/results/r9/$task"
top=5; [ "$task" = style ] && top=6
python bench/pair_stats.py "runs/final/$task" --top "$top" \
  --json "docs/results/r9/$task/pair_stats.json" > "docs/results/r9/$task/pair_stats.md"
python - "$task" <<'PY'
import sys
from pathlib import Path
from duel.report import load_run
task = sys.argv[1]
old = {"passive": "sweeps7", "xpo": "sweeps6", "apl": "sweeps6", "ee_ts": "sweeps9", "bai_ts": "sweeps9"}
def evals(d):
    return [(r["queries"], r.get("expected_win_rate"), r.get("win_rate")) for r in load_run(d).evals]
same = differ = 0
for run in sorted(Path(f"runs/final/{task}").glob("*-s*")):
    prev = Path(f"runs/{old[run.name.rsplit('-s', 1)[0]]}/{task}/{run.name}")
    if not (prev / "metrics.jsonl").is_file():
        continue
    if evals(run) == evals(prev):
        same += 1
    else:
        differ += 1
        print(f"{run}: evals differ from {prev}")
print(f"{task}: {same} runs reproduce the earlier finals eval for eval, {differ} differ")
PY

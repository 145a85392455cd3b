"""Table of the tuning sweeps (runs/tuning/*): expected win rate per seed at each eval, passive and
ee_ts, for docs/results/README.md.  python docs/results/tuning/summarize.py [runs/tuning]"""

import json
import sys
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/tuning")
print("| sweep | run | start | expected win rate at 160 / 320 / 480 / 640 queries | final greedy win rate |")
print("|---|---|---|---|---|")
for sweep in sorted(p for p in root.iterdir() if p.is_dir()):
    for run in sorted(p for p in sweep.iterdir() if (p / "metrics.jsonl").is_file()):
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
        ev = [r for r in rows if r["kind"] == "eval"]
        if not ev or "expected_win_rate" not in ev[0]:
            continue
        by_q = {r["queries"]: r["expected_win_rate"] for r in ev}
        cells = " / ".join(f"{by_q[q]:.3f}" if q in by_q else "-" for q in (160, 320, 480, 640))
        print(f"| {sweep.name} | {run.name} | {ev[0]['start_expected_win_rate']:.3f} | {cells} | "
              f"{ev[-1]['win_rate']:.3f} |")

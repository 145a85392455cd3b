"""Table of the second tuning round (runs/tuning2/*): per run, the expected win rate at each eval
as queries:value, and the queries at which it first reaches LEVEL (default: none).
    python docs/results/tuning2/summarize.py [runs/tuning2] [--level 0.445]"""

import argparse
import json
from pathlib import Path

ap = argparse.ArgumentParser()
ap.add_argument("root", nargs="?", default="runs/tuning2")
ap.add_argument("--level", type=float)
args = ap.parse_args()
print("| sweep | run | start | expected win rate (queries: value) | steps | first reaches level |")
print("|---|---|---|---|---|---|")
for sweep in sorted(p for p in Path(args.root).iterdir() if p.is_dir()):
    for run in sorted(p for p in sweep.iterdir() if (p / "metrics.jsonl").is_file()):
        rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
        ev = [r for r in rows if r["kind"] == "eval" and "expected_win_rate" in r]
        if not ev:
            continue
        cells = " ".join(f"{r['queries']}:{r['expected_win_rate']:.3f}" for r in ev)
        hit = next((r["queries"] for r in ev if args.level and r["expected_win_rate"] >= args.level), "-")
        print(f"| {sweep.name} | {run.name} | {ev[0]['start_expected_win_rate']:.3f} | {cells} | "
              f"{ev[-1]['step']} | {hit} |")

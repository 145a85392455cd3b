"""Fifteenth round, part 2: the 4-seed mean eval curve (expected win rate by queries) of passive
(B2), D and W on tuning seeds 100-103, per task (runs/tuning14/TASK-base, TASK-W).

    python docs/results/tuning15/curves.py
"""
from collections import defaultdict
from pathlib import Path

import numpy as np

from duel.report import load_run

for task in ("arithmetic", "sort", "style"):
    rows = {}
    for name, d, strat in (("passive (B2)", f"runs/tuning14/{task}-base", "passive"),
                           ("D", f"runs/tuning14/{task}-base", "ee_ts"), ("W", f"runs/tuning14/{task}-W", "ee_ts")):
        by_q = defaultdict(list)
        for s in (100, 101, 102, 103):
            for e in load_run(Path(d) / f"{strat}-s{s}").evals:
                by_q[e["queries"]].append(e["expected_win_rate"])
        rows[name] = {q: float(np.mean(v)) for q, v in by_q.items() if len(v) == 4}
    qs = sorted(set().union(*rows.values()))
    print(f"`{task}` | " + " | ".join(str(q) for q in qs))
    print("|---|" + "---|" * len(qs))
    for name, r in rows.items():
        print(f"| {name} | " + " | ".join(f"{r[q]:.3f}" if q in r else "–" for q in qs) + " |")
    print()

"""The ensemble's online accuracy on the asked pairs (train rows' erm_asked_*, summed over a run)
against how right its synthetic labels are by the gold reward (synthetic_gold_agree, simulated
oracles only), per run and over the first quarter of the budget; and a check that each run's evals
equal round 9's run of the same seed (runs/tuning8/TASK-ee-r8-D, `sort` and `style`): the diagnostic
changes no training. `arithmetic` and `reverse` (not tuned on) show what a gate would read there.

    bash docs/results/tuning13/run_asked.sh && python docs/results/tuning13/asked.py
"""
from pathlib import Path

import numpy as np

from duel.metrics import read_metrics
from duel.report import load_run


def evals(d):
    return [(r["queries"], r.get("expected_win_rate"), r.get("win_rate")) for r in load_run(d).evals]


print("| task | seed | asked pairs | agree | sure | sure and agree | agree, first 160 queries | sure agree, first 160 | synthetic labels right (gold) | evals equal round 9's |")
print("|---|---|---|---|---|---|---|---|---|---|")
for task in ("sort", "style", "arithmetic", "reverse"):
    for run in sorted(Path(f"runs/asked/{task}").glob("ee_ts-s*")):
        rows = read_metrics(run, "train")
        s = {k: sum(r.get(k, 0.0) for r in rows) for k in ("erm_asked", "erm_asked_agree", "erm_asked_sure", "erm_asked_sure_agree")}
        early = [r for r in rows if r["queries"] <= 160]
        e = {k: sum(r.get(k, 0.0) for r in early) for k in ("erm_asked", "erm_asked_agree", "erm_asked_sure", "erm_asked_sure_agree")}
        gold = np.nanmean([r["synthetic_gold_agree"] for r in rows if "synthetic_gold_agree" in r])
        prev = Path(f"runs/tuning8/{task}-ee-r8-D") / run.name  # sort and style only
        same = None if not prev.is_dir() else evals(run) == evals(prev)
        ratio = lambda a, b: f"{a / b:.3f}" if b else "–"
        print(f"| `{task}` | {run.name.rsplit('-s', 1)[1]} | {s['erm_asked']:.0f} | {ratio(s['erm_asked_agree'], s['erm_asked'])} | "
              f"{s['erm_asked_sure']:.0f} | {ratio(s['erm_asked_sure_agree'], s['erm_asked_sure'])} | "
              f"{ratio(e['erm_asked_agree'], e['erm_asked'])} | {ratio(e['erm_asked_sure_agree'], e['erm_asked_sure'])} "
              f"({e['erm_asked_sure']:.0f}) | {gold:.3f} | {'–' if same is None else 'yes' if same else 'NO'} |")

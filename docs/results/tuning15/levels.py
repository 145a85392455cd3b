"""Fifteenth round, part 2 (docs/results/tuning15/PLAN.md): does the bag of words change what
ee_ts's synthetic labels teach? Per task, over the whole run of seeds 100-101: the share of the
gold lift (candidates' mean -> the prompt's best) that the synthetic label's preferred response
captures, and the synthetic labels' agreement with gold (train rows' synthetic_gold_*), for D
(round 14's runs/tuning14/levels-TASK, recipe-r13's ee_ts) and W (runs/tuning14/TASK-W).

    python docs/results/tuning15/levels.py
"""
from pathlib import Path

import numpy as np

from duel.metrics import read_metrics

KEYS = ("synthetic_gold_agree", "synthetic_gold_chosen", "synthetic_gold_mean", "synthetic_gold_best")


def share(d):
    rows = [x for s in (100, 101) if (Path(d) / f"ee_ts-s{s}").is_dir()
            for x in read_metrics(Path(d) / f"ee_ts-s{s}", "train")]
    m = {k: np.nanmean([x.get(k, np.nan) for x in rows]) for k in KEYS}
    lift = (m["synthetic_gold_chosen"] - m["synthetic_gold_mean"]) / (m["synthetic_gold_best"] - m["synthetic_gold_mean"])
    return lift, m["synthetic_gold_agree"]


print("| task | D: preferred's share of the lift | W: share | D: synthetic labels right | W: right |")
print("|---|---|---|---|---|")
for task in ("sort", "arithmetic", "style"):
    (dl, da), (wl, wa) = share(f"runs/tuning14/levels-{task}"), share(f"runs/tuning14/{task}-W")
    print(f"| `{task}` | {dl:.2f} | {wl:.2f} | {da:.3f} | {wa:.3f} |")

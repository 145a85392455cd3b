"""Round 12's finals against the shipped ones: the same ee_ts runs reported against passive at
beta 0.1 (shipped, docs/results/r9/TASK/ and the held-out reports) or at beta 0.2 (round 12,
docs/results/b2/TASK/). Per task: passive's final and check (c) drops; ee_ts's check (a) ratio
with its bootstrap interval, (b), and its same-seed AUC and final differences from passive.

    python docs/results/tuning12/compare.py   # prints the table of docs/results/b2/README.md
"""
import json
from pathlib import Path

SHIPPED = {"arithmetic": "docs/results/r9/arithmetic", "reverse": "docs/results/heldout/report-seeds10",
           "sort": "docs/results/r9/sort", "style": "docs/results/r9/style"}


def groups(report_dir):
    task = next(iter(json.loads((Path(report_dir) / "report.json").read_text())["tasks"].values()))
    out = {}
    for label, g in task["strategies"].items():  # the held-out 10-seed report also holds the
        if "candidates=8" in label and label.startswith("passive"):  # ablation (passive's pair, 8 candidates)
            continue
        out[label.split()[0]] = g
    return out


def interval(d):
    return f"{d['mean']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}]"


print("| task | passive | seeds | passive final | passive drops (c) | ee_ts (a) queries to passive's final | (b) | ee_ts − passive AUC, same seeds | ee_ts − passive final, same seeds |")
print("|---|---|---|---|---|---|---|---|---|")
for task, shipped in SHIPPED.items():
    for name, d in (("beta 0.1 (shipped)", shipped), ("beta 0.2 (round 12)", f"docs/results/b2/{task}")):
        gs = groups(d)
        p, e = gs["passive"], gs["ee_ts"]
        a, nc = e["acceptance"], p["no_collapse"]
        print(f"| `{task}` | {name} | {p['final']['n']} | {p['final']['mean']:.3f} | "
              f"{len(nc['drops'])} / {nc['pairs_checked']} | x{a['ratio']:.2f} [{a['ratio_lo']:.2f}, {a['ratio_hi']:.2f}] "
              f"({a['queries']:.0f} / {a['passive_queries']:.0f}) | {'yes' if a['final_above_passive'] else 'no'} | "
              f"{interval(e['vs_passive']['auc'])} | {interval(e['vs_passive']['final'])} |")

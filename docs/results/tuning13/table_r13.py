"""Round 13, part 1: the shipped reports of recipe-r13.yaml (passive, xpo, apl at beta 0.2), one row
per task: passive's final and check-(c) drops; per other strategy check (a)'s ratio with its
bootstrap interval, its final, and (b).

    python docs/results/tuning13/table_r13.py   # after bash docs/results/report_r13.sh TASK (each task)
"""
import json
import math
from pathlib import Path

REPORTS = {"sort": "docs/results/sort", "arithmetic": "docs/results/arithmetic",
           "style": "docs/results/style", "reverse": "docs/results/heldout/report-r13"}
OTHERS = ["ee_ts", "bai_ts", "xpo", "apl"]


def ratio(a):
    if not a or not isinstance(a["ratio"], (int, float)) or math.isinf(a["ratio"]) or math.isnan(a["ratio"]):
        return "not reached"
    hi = a["ratio_hi"]
    hi = "∞" if not isinstance(hi, (int, float)) or math.isinf(hi) else f"{hi:.2f}"
    bold = "**" if a["ratio"] <= 1 / 3 and a["final_above_passive"] else ""
    return f"{bold}x{a['ratio']:.2f}{bold} [{a['ratio_lo']:.2f}, {hi}]"


print("| task | passive final (drops (c)) | " + " | ".join(f"{s}: (a), final" for s in OTHERS) + " |")
print("|---" * (2 + len(OTHERS)) + "|")
for task, d in REPORTS.items():
    t = next(iter(json.loads((Path(d) / "report.json").read_text())["tasks"].values()))
    g = {k.split()[0]: v for k, v in t["strategies"].items()}
    p = g["passive"]
    cells = []
    for s in OTHERS:
        v = g[s]
        b = "" if v["acceptance"]["final_above_passive"] else " (b: no)"
        cells.append(f"{ratio(v['acceptance'])}, {v['final']['mean']:.3f}{b}")
    print(f"| [`{task}`]({d}/report.md) | {p['final']['mean']:.3f} ({len(p['no_collapse']['drops'])} / "
          f"{p['no_collapse']['pairs_checked']}) | " + " | ".join(cells) + " |")

"""Round 11's finals against the shipped ones: passive and ee_ts of the same runs, evaluated through
the Polyak average (eval.ema=0.9, docs/results/ema/TASK/report.json) or the policy itself (the
shipped reports). Per task: passive's final, AUC and check (c) drops; ee_ts's check (a) ratio with
its bootstrap interval, its final with its interval, (b) and (c).

    python docs/results/tuning11/compare.py   # prints the markdown table of docs/results/ema/README.md
"""
import json
from pathlib import Path

SHIPPED = {"arithmetic": "docs/results/r9/arithmetic", "reverse": "docs/results/heldout/report",
           "sort": "docs/results/r9/sort", "style": "docs/results/r9/style"}


def groups(report_dir):
    path = Path(report_dir) / "report.json"
    if not path.is_file():
        return None
    task = next(iter(json.loads(path.read_text())["tasks"].values()))
    out = {}
    for label, g in task["strategies"].items():
        name = label.split()[0]
        if name in ("passive", "ee_ts"):
            out[name] = g
    return out


def row(task, eval_name, gs):
    p, e = gs["passive"], gs["ee_ts"]
    nc = p["no_collapse"]
    a = e["acceptance"] if "acceptance" in e else e.get("checks", {})
    return (f"| `{task}` | {eval_name} | {p['final']['mean']:.3f} | {p['auc']['mean']:.3f} | "
            f"{len(nc['drops'])} / {nc['pairs_checked']} | x{a['ratio']:.2f} [{a['ratio_lo']:.2f}, {a['ratio_hi']:.2f}] | "
            f"{e['final']['mean']:.3f} [{e['final']['lo']:.3f}, {e['final']['hi']:.3f}] | "
            f"{'yes' if a['final_above_passive'] else 'no'} | {e['no_collapse']['no_collapse'] and 'yes' or 'no'} |")


print("| task | eval | passive final | passive AUC | passive drops (c) | ee_ts (a) queries to passive's final | ee_ts final | (b) | ee_ts (c) |")
print("|---|---|---|---|---|---|---|---|---|")
for task, shipped in SHIPPED.items():
    for name, d in (("policy (shipped)", shipped), ("average, eval.ema=0.9", f"docs/results/ema/{task}")):
        gs = groups(d)
        if gs is not None:
            print(row(task, name, gs))

"""Fifteenth round, part 1 (docs/results/tuning15/PLAN.md): the probe's gold pair accuracy at
64 / 256 / 1024 labels and top-1 at 1024, per feature and task, from the probe's JSON files, and
the plan's lead rule against `hidden_probs`.

    python docs/results/tuning15/probe_table.py [SUFFIX]    # erm_probe_{style,arith,sort}_SUFFIX.json (default: sum)
"""
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
suffix = sys.argv[1] if len(sys.argv) > 1 else "sum"
tasks = {"style": "style", "arith": "arithmetic", "sort": "sort"}
res = {t: {(r["feature"], r["n"]): r for r in json.loads((HERE / f"erm_probe_{t}_{suffix}.json").read_text())["results"]
           if r.get("training", "learner") == "learner"} for t in tasks}
feats = list(dict.fromkeys(f for f, n in res["style"] if f != "policy_logprob"))
print("| 64 / 256 / 1024 labels (top-1 at 1024) | " + " | ".join(f"`{v}`" for v in tasks.values()) + " |")
print("|---|" + "---|" * len(tasks))
for f in feats:
    cells = []
    for t in tasks:
        a = [res[t][(f, n)]["acc_gold"] for n in (64, 256, 1024)]
        cells.append(" / ".join(f"{x:.2f}" for x in a) + f" ({res[t][(f, 1024)]['top1']:.2f})")
    print(f"| `{f}` | " + " | ".join(cells) + " |")
print()
base = "hidden_probs"
for f in feats:
    if f in (base, "mean_nostop"):
        continue
    lift = res["style"][(f, 1024)]["top1"] - res["style"][(base, 1024)]["top1"]
    worst = min(res[t][(f, n)]["acc_gold"] - res[t][(base, n)]["acc_gold"] for t in ("arith", "sort") for n in (256, 1024))
    lead = lift >= 0.05 and worst >= -0.03
    print(f"{f}: style top-1 {lift:+.3f} vs {base}; worst arithmetic/sort pair accuracy at 256/1024 {worst:+.3f} "
          f"-> {'a lead' if lead else 'not a lead'}")

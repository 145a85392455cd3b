"""Round 13's tuning table (docs/results/tuning13/PLAN.md): each ee_ts candidate on seeds 100-103 of
`sort` and `style` against passive at beta 0.2 (round 12's B2 tuning runs), beside round 9's
recipe (D). Check (a)'s ratio (queries to B2's 4-seed mean final on the 4-seed mean curve, over
B2's), the 4-seed mean final, and the rule's verdict.

    python docs/results/tuning13/compare.py [NAME ...]   # NAME: runs/tuning13/TASK-NAME
"""
import sys

from duel.report import find_runs, load_run, summarize

BASE = "runs/tuning12/{task}-pas-B2"
D = "runs/tuning8/{task}-ee-r8-D"


def measure(task, cand):
    runs = [load_run(p) for p in find_runs([BASE.format(task=task), cand.format(task=task)])]
    s = next(iter(summarize(runs)["tasks"].values()))
    e = next(v for k, v in s["strategies"].items() if k.startswith("ee_ts"))
    a = e["acceptance"]
    return a["ratio"], a["ratio_lo"], a["ratio_hi"], e["final"]["mean"], len(e["no_collapse"]["drops"])


names = sys.argv[1:] or ["E4", "L2"]
rows = {"D (round 9)": D, **{n: f"runs/tuning13/{{task}}-ee-{n}" for n in names}}
res = {}
print("| candidate | `sort` ratio [95%], final | `style` ratio [95%], final | mean ratio | drops after 1/5 |")
print("|---|---|---|---|---|")
for name, pat in rows.items():
    try:
        res[name] = {t: measure(t, pat) for t in ("sort", "style")}
    except (FileNotFoundError, ValueError, StopIteration) as e:
        print(f"| {name} | not run ({type(e).__name__}) | | | |")
        continue
    r = res[name]
    cells = [f"x{r[t][0]:.2f} [{r[t][1]:.2f}, {r[t][2]:.2f}], {r[t][3]:.3f}" for t in ("sort", "style")]
    print(f"| {name} | {cells[0]} | {cells[1]} | {(r['sort'][0] + r['style'][0]) / 2:.3f} | "
          f"{r['sort'][4] + r['style'][4]} |")

# the rule of PLAN.md: lowest mean ratio; mean <= D's - 0.05; no task's ratio > D's + 0.05; no
# task's final < D's - 0.01
d = res["D (round 9)"]
dmean = (d["sort"][0] + d["style"][0]) / 2
ok = {}
for n in names:
    if n not in res:
        continue
    r = res[n]
    mean = (r["sort"][0] + r["style"][0]) / 2
    passes = (mean <= dmean - 0.05 and all(r[t][0] <= d[t][0] + 0.05 for t in r)
              and all(r[t][3] >= d[t][3] - 0.01 for t in r))
    if passes:
        ok[n] = mean
    print(f"{n}: mean ratio {mean:.3f} (D {dmean:.3f}) -> {'passes' if passes else 'fails'} the rule")
print("chosen:", min(ok, key=ok.get) if ok else "none (D stands)")

"""Fourteenth round's tuning table (docs/results/tuning14/PLAN.md): ee_ts candidates on tuning
seeds 100-103 against passive (B2) of the same seeds and sweep. Check (a)'s ratio (queries to
B2's 4-seed mean final on the 4-seed mean curve, over B2's) [95% bootstrap over seeds], the
4-seed mean final and AUC, passive's drops after the first fifth, and part 1's rule.

    python docs/results/tuning14/compare.py [TASK [NAME ...]]   # runs/tuning14/TASK-{base,NAME}
    python docs/results/tuning14/compare.py rule MP             # part 4's rule over three tasks
"""
import sys

from duel.report import find_runs, load_run, summarize


def measure(task, name):
    dirs = [f"runs/tuning14/{task}-base"] + ([] if name == "D" else [f"runs/tuning14/{task}-{name}"])
    runs = [load_run(p) for p in find_runs(dirs)]
    if name != "D":  # the candidate's ee_ts against the base sweep's passive
        runs = [r for r in runs if not (r.strategy.startswith("ee_ts") and f"{task}-base" in str(r.path))]
    s = next(iter(summarize(runs)["tasks"].values()))
    e = next(v for k, v in s["strategies"].items() if k.startswith("ee_ts"))
    p = next(v for k, v in s["strategies"].items() if k.startswith("passive"))
    a = e["acceptance"]
    return dict(ratio=a["ratio"], lo=a["ratio_lo"], hi=a["ratio_hi"], final=e["final"]["mean"],
                auc=e["auc"]["mean"], pfinal=p["final"]["mean"], pdrops=len(p["no_collapse"]["drops"]))


if len(sys.argv) > 1 and sys.argv[1] == "rule":  # part 4's rule over the three tuning tasks
    name = sys.argv[2] if len(sys.argv) > 2 else "MP"
    tasks = ("arithmetic", "sort", "style")
    d = {t: measure(t, "D") for t in tasks}
    c = {t: measure(t, name) for t in tasks}
    dmean = sum(d[t]["ratio"] for t in tasks) / 3
    cmean = sum(c[t]["ratio"] for t in tasks) / 3
    for t in tasks:
        print(f"{t}: {name} x{c[t]['ratio']:.3f} final {c[t]['final']:.3f} | D x{d[t]['ratio']:.3f} final {d[t]['final']:.3f}")
    ok = (cmean <= dmean - 0.05 and all(c[t]["ratio"] <= d[t]["ratio"] + 0.05 for t in tasks)
          and all(c[t]["final"] >= d[t]["final"] - 0.01 for t in tasks))
    print(f"{name}: mean ratio {cmean:.3f} (D {dmean:.3f}) -> {'qualifies' if ok else 'does not qualify'}")
    sys.exit(0)
task = sys.argv[1] if len(sys.argv) > 1 else "arithmetic"
names = ["D"] + (sys.argv[2:] or ["L2"])
res = {}
print(f"| `{task}`, seeds 100-103 | ratio [95%] | final | AUC | passive final | passive drops after 1/5")
print("|---|---|---|---|---|---|")
for n in names:
    r = res[n] = measure(task, n)
    print(f"| {n} | x{r['ratio']:.2f} [{r['lo']:.2f}, {r['hi']:.2f}] | {r['final']:.3f} | {r['auc']:.3f} | "
          f"{r['pfinal']:.3f} | {r['pdrops']} |")
d = res["D"]
for n in names[1:]:
    r = res[n]
    ok = r["ratio"] <= d["ratio"] - 0.05 and r["final"] >= d["final"] - 0.01
    print(f"{n}: ratio {r['ratio']:.3f} vs D {d['ratio']:.3f}, final {r['final']:.3f} vs {d['final']:.3f} "
          f"-> {'passes' if ok else 'fails'} part 1's rule")

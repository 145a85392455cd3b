"""Sixteenth round (docs/results/tuning16/PLAN.md): recipe-r16-style on `style` seeds 5-9.

Checks the rerun passive and D (recipe-r13's ee_ts) against round 13's seeds 5-9
(docs/results/tuning13/style-seeds10/report.json, eval for eval); prints issue 14's checks (a), (b)
for ee_ts and bai_ts (W) and D against passive of the same seeds, (c) for passive, xpo and apl's
rows, and W − D same-seed differences of final and AUC with 95% t-intervals.

    bash docs/results/tuning16/run_finals.sh; python docs/results/tuning16/finals.py
"""
import json
from pathlib import Path

from duel.report import find_runs, load_run, summarize
from duel.report_stats import paired_difference

R16, D = "runs/r16/style", "runs/r16/style-D"
shipped = json.loads(Path("docs/results/tuning13/style-seeds10/report.json").read_text())
shipped = shipped["tasks"]["style"]["strategies"]
for strat, where in (("passive", R16), ("ee_ts", D)):
    ship = next(v for k, v in shipped.items() if k.startswith(strat + " "))
    for r in ship["runs"]:
        if r["seed"] < 5:
            continue
        ev = [e["expected_win_rate"] for e in load_run(Path(where) / f"{strat}-s{r['seed']}").evals]
        same = ev in (r["values"], r["values"][1:])
        print(f"{strat} (recipe-r13) s{r['seed']}: evals equal round 13's run: {'yes' if same else 'NO'}")


def strategies(dirs, keep=lambda run: True):
    runs = [r for r in (load_run(p) for p in find_runs(dirs)) if keep(r)]
    return next(iter(summarize(runs)["tasks"].values()))["strategies"]


def pick(s, name):
    return next(v for k, v in s.items() if k.startswith(name + " ") or k == name)


w = strategies([R16])
d = strategies([R16, D], keep=lambda r: r.strategy.startswith("passive") or D in str(r.path))
p = pick(w, "passive")
print(f"\npassive final {p['final']['mean']:.3f} [{p['final']['lo']:.3f}, {p['final']['hi']:.3f}], "
      f"drops (c) {len(p['no_collapse']['drops'])} of {p['no_collapse']['pairs_checked']}")
rows = [("ee_ts (W)", pick(w, "ee_ts")), ("bai_ts (W)", pick(w, "bai_ts")), ("xpo", pick(w, "xpo")),
        ("apl", pick(w, "apl")), ("ee_ts (D, recipe-r13)", pick(d, "ee_ts"))]
for name, s in rows:
    a = s["acceptance"]
    ratio = "not reached" if a["ratio"] is None or a["ratio"] == float("inf") else \
        f"x{a['ratio']:.4f} [{a['ratio_lo']:.2f}, {a['ratio_hi']:.2f}]"
    print(f"{name}: (a) {ratio}, one third: {a['one_third']}; final {s['final']['mean']:.3f} "
          f"[{s['final']['lo']:.3f}, {s['final']['hi']:.3f}], (b) {a['final_above_passive']}; "
          f"AUC {s['auc']['mean']:.3f}")
we, de = pick(w, "ee_ts"), pick(d, "ee_ts")
assert we["seeds"] == de["seeds"]
for key in ("final", "auc"):
    diff = paired_difference(we[key]["per_seed"], de[key]["per_seed"])
    print(f"W − D (ee_ts), same seeds, {key}: {diff['mean']:+.3f} [{diff['lo']:+.3f}, {diff['hi']:+.3f}] "
          f"(per seed {', '.join(f'{x:+.3f}' for x in diff['per_seed'])})")

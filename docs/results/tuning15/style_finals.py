"""Fifteenth round, amendment (docs/results/tuning15/PLAN.md): W on `style` seeds 0-4, exploratory.
Checks the rerun passive and D against the shipped report (docs/results/style/report.json, eval for
eval), then prints check (a) and the final for D and W against passive of the same sweep, and
W − D same-seed differences of final and AUC with 95% t-intervals (duel.report_stats.paired_difference).

    bash docs/results/tuning15/run_style_finals.sh; python docs/results/tuning15/style_finals.py
"""
import json
from pathlib import Path

from duel.report import find_runs, load_run, summarize
from duel.report_stats import paired_difference

BASE, W = "runs/tuning15/style-base", "runs/tuning15/style-W"
shipped = json.loads(Path("docs/results/style/report.json").read_text())["tasks"]["style"]["strategies"]
for strat in ("passive", "ee_ts"):
    ship = next(v for k, v in shipped.items() if k.startswith(strat + " "))
    for r in ship["runs"]:
        ev = load_run(Path(BASE) / f"{strat}-s{r['seed']}").evals
        same = [e["expected_win_rate"] for e in ev] == r["values"][1:] or \
            [e["expected_win_rate"] for e in ev] == r["values"]
        print(f"{strat} s{r['seed']}: evals equal the shipped run's: {'yes' if same else 'NO'}")


def strategies(dirs, drop_base_ee=False):
    runs = [load_run(p) for p in find_runs(dirs)]
    if drop_base_ee:
        runs = [r for r in runs if not (r.strategy.startswith("ee_ts") and BASE in str(r.path))]
    return next(iter(summarize(runs)["tasks"].values()))["strategies"]


d, w = strategies([BASE]), strategies([BASE, W], drop_base_ee=True)
pick = lambda s, name: next(v for k, v in s.items() if k.startswith(name))
p = pick(d, "passive")
print(f"\npassive (B2) final {p['final']['mean']:.3f} [{p['final']['lo']:.3f}, {p['final']['hi']:.3f}], "
      f"drops (c) {len(p['no_collapse']['drops'])}")
for name, s in (("D", pick(d, "ee_ts")), ("W", pick(w, "ee_ts"))):
    a = s["acceptance"]
    print(f"{name}: (a) x{a['ratio']:.2f} [{a['ratio_lo']:.2f}, {a['ratio_hi']:.2f}], final {s['final']['mean']:.3f} "
          f"[{s['final']['lo']:.3f}, {s['final']['hi']:.3f}], AUC {s['auc']['mean']:.3f}, (b) {a['final_above_passive']}")
de, we = pick(d, "ee_ts"), pick(w, "ee_ts")
assert de["seeds"] == we["seeds"]
for key in ("final", "auc"):
    diff = paired_difference(we[key]["per_seed"], de[key]["per_seed"])
    print(f"W − D, same seeds, {key}: {diff['mean']:+.3f} [{diff['lo']:+.3f}, {diff['hi']:+.3f}] "
          f"(per seed {', '.join(f'{x:+.3f}' for x in diff['per_seed'])})")

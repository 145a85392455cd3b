"""Seventeenth round (docs/results/tuning17/PLAN.md): the bag of words (W) on the held-out `reverse`.

For each of the two starting policies (the shipped one: runs/r17/reverse-shipped-*, primary; the
one built under --xla_backend_optimization_level=0: runs/r17/reverse-*) it checks the rerun passive
(P) and D (recipe-r13's ee_ts, bai_ts) against the shipped runs of docs/results/heldout/report-r13
eval for eval, prints issue 14's checks (a), (b) for W and D against P, W − D same-seed differences
of final and AUC (95% t-intervals), and the plan's rule (it decides on the primary set only).

    bash docs/results/tuning17/run.sh; python docs/results/tuning17/compare.py
"""
import json
from pathlib import Path

from duel.report import find_runs, load_run, summarize
from duel.report_stats import paired_difference

shipped = json.loads(Path("docs/results/heldout/report-r13/report.json").read_text())
shipped = next(iter(shipped["tasks"].values()))["strategies"]


def strategies(dirs):
    runs = [load_run(p) for p in find_runs(dirs)]
    return next(iter(summarize(runs)["tasks"].values()))["strategies"]


def pick(s, name):
    return next(v for k, v in s.items() if k.startswith(name + " ") or k == name)


def compare(prefix: str, title: str) -> bool:
    print(f"\n## {title} ({prefix}-{{P,W,D}})")
    P, D, W = f"{prefix}-P", f"{prefix}-D", f"{prefix}-W"
    have_d = all((Path(D) / f"{s}-s{i}" / "metrics.jsonl").is_file()
                 and load_run(Path(D) / f"{s}-s{i}").complete for s in ("ee_ts", "bai_ts") for i in range(5))
    same = {}
    for strat, where in (("passive", P), ("ee_ts", D), ("bai_ts", D)):
        if where == D and not have_d:
            continue
        ship = next(v for k, v in shipped.items() if k.startswith(strat + " "))
        for r in ship["runs"]:
            ev = [e["expected_win_rate"] for e in load_run(Path(where) / f"{strat}-s{r['seed']}").evals]
            same[strat, r["seed"]] = ev in (r["values"], r["values"][1:])
    print(f"equal the shipped runs eval for eval: {sum(same.values())} of {len(same)} "
          f"({', '.join(sorted({s for s, _ in same}))})")
    w = strategies([P, W])
    if have_d:
        d = strategies([P, D])
    elif all(same.values()):  # P is the shipped passive: the shipped report's D rows are D's
        print("D: the shipped runs (docs/results/heldout/report-r13), P being the shipped passive")
        d = shipped
    else:  # the set from the other policy, when its D was not run: W against P only
        print(f"D: not run in {D} (P is not the shipped passive, so the shipped D does not stand in)")
        d = None
    p = pick(w, "passive")
    print(f"passive final {p['final']['mean']:.3f} [{p['final']['lo']:.3f}, {p['final']['hi']:.3f}], "
          f"drops (c) {len(p['no_collapse']['drops'])} of {p['no_collapse']['pairs_checked']}")
    ratios = {}
    for tag, s in (("W", w), ("D", d)) if d is not None else (("W", w),):
        for strat in ("ee_ts", "bai_ts"):
            row = pick(s, strat)
            a = row["acceptance"]
            r = a["ratio"] if a["ratio"] is not None else float("inf")
            ratios[tag, strat] = r
            ratio = "not reached" if r == float("inf") else \
                f"x{r:.4f} [{a['ratio_lo']:.2f}, {a['ratio_hi']:.2f}]"
            print(f"{strat} ({tag}): (a) {ratio}, one third: {a['one_third']}; final "
                  f"{row['final']['mean']:.3f} [{row['final']['lo']:.3f}, {row['final']['hi']:.3f}], "
                  f"(b) {a['final_above_passive']}; AUC {row['auc']['mean']:.3f}")
    if d is None:
        return False
    finals_ok = True
    for strat in ("ee_ts", "bai_ts"):
        we, de = pick(w, strat), pick(d, strat)
        assert we["seeds"] == de["seeds"]
        for key in ("final", "auc"):
            diff = paired_difference(we[key]["per_seed"], de[key]["per_seed"])
            if key == "final":
                finals_ok &= diff["mean"] >= 0
            print(f"W − D ({strat}), same seeds, {key}: {diff['mean']:+.3f} [{diff['lo']:+.3f}, "
                  f"{diff['hi']:+.3f}] (per seed {', '.join(f'{x:+.3f}' for x in diff['per_seed'])})")
    best_w = min(ratios["W", "ee_ts"], ratios["W", "bai_ts"])
    best_d = min(ratios["D", "ee_ts"], ratios["D", "bai_ts"])
    ok = best_w <= best_d and finals_ok
    print(f"rule: best W x{best_w:.4f} <= best D x{best_d:.4f}: {best_w <= best_d}; "
          f"W − D final >= 0 for ee_ts and bai_ts: {finals_ok} -> {ok}")
    return ok


primary = compare("runs/r17/reverse-shipped", "the shipped starting policy (primary)")
compare("runs/r17/reverse", "the starting policy built under --xla_backend_optimization_level=0")
print("\nthe plan's rule, on the primary set: "
      + ("W is the starting recipe for a new task" if primary else "recipe-r13 stays the starting recipe"))

"""Round 23's held-out check (PLAN.md and its amendment): checks (a), (b) on `reverse` seeds 0-9
for ee_ts of recipe-r22-arithmetic (runs/tuning23/reverse-P32, seeds 0-4) against recipe-r13's passive from
the same starting policy (runs/tuning23/reverse-passive) and against the shipped passive (another
starting policy), beside the shipped recipe-r13 ee_ts (docs/results/b2/reverse/report.json).

    python docs/results/tuning23/reverse.py   # writes reverse.md beside it
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tuning20"))
from against import cells, checks, from_runs, shipped  # noqa: E402  (round 20's)

REPORT, RUNS = HERE.parent / "b2/reverse/report.json", Path("runs/tuning23")


def main() -> None:
    budget, groups = shipped(REPORT)
    today = from_runs(RUNS / "reverse-passive")
    p32 = from_runs(RUNS / "reverse-P32", "ee_ts")
    seeds = {r["seed"] for r in p32}  # the shipped runs on the same seeds (0-4: PLAN's second amendment)
    groups = {k: [r for r in v if r["seed"] in seeds] for k, v in groups.items()}
    rows = (("recipe-r13 (shipped)", "shipped (other policy)", groups["ee_ts"], groups["passive"]),
            ("recipe-r22 (P32)", "today's (same policy)", p32, today),
            ("recipe-r22 (P32)", "shipped (other policy)", p32, groups["passive"]))
    lines = ["| active ee_ts | passive | passive final | (a) ratio [95% bootstrap] | (a) <= 1/3 | final [95% t] | (b) | "
             "passive (c) drops |", "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {arm} | {pname} | {cells(checks(active, passive, budget))}" for arm, pname, active, passive in rows]
    starts = [f"seed {a['seed']}: {a['values'][0]:.4f} vs {b['values'][0]:.4f}" for a, b in zip(today, groups["passive"])]
    lines += ["", "start evals, today's policy vs the shipped runs': " + "; ".join(starts)]
    text = "\n".join(lines)
    print(text)
    (HERE / "reverse.md").write_text(text + "\n")


if __name__ == "__main__":
    main()

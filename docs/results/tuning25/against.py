"""Round 25's finals (PLAN.md): checks (a), (b) for P64's bai_ts (runs/tuning25/final-arithmetic,
seeds 0-9) beside recipe-r22's ee_ts / bai_ts (runs/tuning22/final-arithmetic) and recipe-r13's
bai_ts (the shipped report), against the shipped passive (B2) and round 20's RB64 on `arithmetic`
seeds 0-9.

    python docs/results/tuning25/against.py   # writes against.md beside it
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tuning20"))
from against import CASES, cells, checks, from_runs, shipped  # noqa: E402  (round 20's)

ARMS = (("recipe-r22", Path("runs/tuning22/final-arithmetic")), ("P64", Path("runs/tuning25/final-arithmetic")))


def main() -> None:
    report, rb64 = CASES["arithmetic"]
    budget, groups = shipped(report)
    passives = (("B2 (shipped)", groups["passive"]), ("RB64", from_runs(rb64)))
    actives = [("recipe-r13 (shipped)", "bai_ts", groups["bai_ts"])]
    actives += [(arm, g, runs) for arm, sweep in ARMS for g in ("ee_ts", "bai_ts") if (runs := from_runs(sweep, g))]
    lines = ["| active | passive | strategy | passive final | (a) ratio [95% bootstrap] | (a) <= 1/3 | "
             "final [95% t] | (b) | passive (c) drops |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {arm} | {pname} | {g} | {cells(checks(active, passive, budget))}"
              for pname, passive in passives for arm, g, active in actives]
    text = "\n".join(lines)
    print(text)
    (HERE / "against.md").write_text(text + "\n")


if __name__ == "__main__":
    main()

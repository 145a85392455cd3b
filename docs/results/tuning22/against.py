"""Round 22's finals (PLAN.md): issue 14's checks (a), (b) for ee_ts / bai_ts of
recipe-r22-arithmetic (runs/tuning22/final-arithmetic, seeds 0-9) and for the shipped recipe-r13
curves, against both passives on `arithmetic` seeds 0-9: the shipped one (B2, curves from the
shipped report) and round 20's RB64.

    python docs/results/tuning22/against.py   # writes against.md beside it
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tuning20"))
from against import CASES, cells, checks, from_runs, shipped  # noqa: E402  (round 20's)

FINALS = Path("runs/tuning22/final-arithmetic")


def main(arms: tuple[tuple[str, Path], ...] = (("recipe-r22", FINALS),), out: Path = HERE / "against.md") -> None:
    """The rows: per strategy, recipe-r13's shipped curve, then each (label, finals sweep) of
    `arms` that ran it, each against both passives (round 25 passes its own arms)."""
    lines = ["| active | passive | strategy | passive final | (a) ratio [95% bootstrap] | (a) <= 1/3 | "
             "final [95% t] | (b) | passive (c) drops |", "|---|---|---|---|---|---|---|---|---|"]
    report, rb64 = CASES["arithmetic"]
    budget, groups = shipped(report)
    passives = (("B2 (shipped)", groups["passive"]), ("RB64", from_runs(rb64)))
    for strat in ("ee_ts", "bai_ts"):
        # (the shipped 10-seed report holds passive and bai_ts: recipe-r13's ee_ts ran on seeds 0-4 only)
        for arm, active in (("recipe-r13 (shipped)", groups.get(strat)),
                            *((label, from_runs(sweep, strat)) for label, sweep in arms)):
            for pname, passive in passives if active else ():
                lines.append(f"| {arm} | {pname} | {strat} | {cells(checks(active, passive, budget))}")
    text = "\n".join(lines)
    print(text)
    out.write_text(text + "\n")


if __name__ == "__main__":
    main()

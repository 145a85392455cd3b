"""Round 21's finals (PLAN.md): issue 14's checks (a), (b) and passive's (c) for ee_ts / bai_ts
with 64 pairs per replayed update (A64, runs/tuning21/final-TASK-A64), and for the shipped A16
curves, against both passives: the shipped one (B2, curves from its report) and round 20's RB64.

    python docs/results/tuning21/against.py   # writes against.md beside it
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tuning20"))
from against import CASES, cells, checks, from_runs, shipped  # noqa: E402  (round 20's)

FINALS = {"arithmetic": Path("runs/tuning21/final-arithmetic-A64"), "sort": Path("runs/tuning21/final-sort-A64")}


def main() -> None:
    lines = ["| task | active | passive | strategy | passive final | (a) ratio [95% bootstrap] | (a) <= 1/3 | "
             "final [95% t] | (b) | passive (c) drops |", "|---|---|---|---|---|---|---|---|---|---|"]
    for task, (report, rb64) in CASES.items():
        budget, groups = shipped(report)
        passives = (("B2 (shipped)", groups["passive"]), ("RB64", from_runs(rb64)))
        for strat in ("ee_ts", "bai_ts"):
            arms = [("A16 (shipped)", groups.get(strat)), ("A64", from_runs(FINALS[task], strat))]
            for arm, active in arms:
                if not active:
                    continue
                for pname, passive in passives:
                    lines.append(f"| {task} | {arm} | {pname} | {strat} | {cells(checks(active, passive, budget))}")
    text = "\n".join(lines)
    print(text)
    (HERE / "against.md").write_text(text + "\n")


if __name__ == "__main__":
    main()

"""Round 23's held-out check (PLAN.md): checks (a), (b) on `reverse` seeds 0-9 for ee_ts / bai_ts
of recipe-r22-arithmetic (runs/tuning23/reverse-P32) against the shipped passive, beside the
shipped recipe-r13 ee_ts (both from docs/results/b2/reverse/report.json).

    python docs/results/tuning23/reverse.py   # writes reverse.md beside it
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tuning20"))
from against import cells, checks, from_runs, shipped  # noqa: E402  (round 20's)

REPORT, RUNS = HERE.parent / "b2/reverse/report.json", Path("runs/tuning23/reverse-P32")


def main() -> None:
    budget, groups = shipped(REPORT)
    lines = ["| active | strategy | passive final | (a) ratio [95% bootstrap] | (a) <= 1/3 | final [95% t] | (b) | "
             "passive (c) drops |", "|---|---|---|---|---|---|---|---|"]
    lines.append(f"| recipe-r13 (shipped) | ee_ts | {cells(checks(groups['ee_ts'], groups['passive'], budget))}")
    for strat in ("ee_ts", "bai_ts"):
        lines.append(f"| recipe-r22 (P32) | {strat} | {cells(checks(from_runs(RUNS, strat), groups['passive'], budget))}")
    text = "\n".join(lines)
    print(text)
    (HERE / "reverse.md").write_text(text + "\n")


if __name__ == "__main__":
    main()

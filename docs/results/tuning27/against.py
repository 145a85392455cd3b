"""Round 27's finals (PLAN.md): issue 14's checks (a), (b) on `style` seeds 5-9 for the arm
rule.py chose, beside recipe-r16-style's shipped ee_ts / bai_ts curves, each against the shipped
`style-r16` passive (seeds 5-9, curves from its report).

    python docs/results/tuning27/against.py   # after run_finals.sh; writes against.md beside it
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tuning20"))
from against import cells, checks, from_runs, shipped  # noqa: E402  (round 20's)

REPORT = HERE.parent / "style-r16" / "report.json"
FINALS = {"G100": Path("runs/tuning27/final-style-G100"), "G200": Path("runs/tuning27/final-style-G200")}


def main() -> None:
    budget, groups = shipped(REPORT)
    lines = ["| active | strategy | passive final | (a) ratio [95% bootstrap] | (a) <= 1/3 | final [95% t] | "
             "(b) | passive (c) drops |", "|---|---|---|---|---|---|---|---|"]
    for strat in ("ee_ts", "bai_ts"):
        arms = [("recipe-r16-style (shipped)", groups[strat])]
        arms += [(arm, from_runs(d, strat)) for arm, d in FINALS.items() if d.is_dir()]
        for arm, active in arms:
            if active:
                lines.append(f"| {arm} | {strat} | {cells(checks(active, groups['passive'], budget))}")
    text = "\n".join(lines)
    print(text)
    (HERE / "against.md").write_text(text + "\n")


if __name__ == "__main__":
    main()

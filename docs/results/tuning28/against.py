"""Round 28's finals (PLAN.md): the shipped `arithmetic-r25` ee_ts / bai_ts curves (seeds 0-9)
against the shipped passive (B2, from the same report) and against the chosen candidate's passive
runs on the same seeds: issue 14's (a), (b) and the passive's (c) drops.

    python docs/results/tuning28/against.py CL3|LS1   # after run_finals.sh; writes against-NAME.md
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tuning20"))
from against import cells, checks, from_runs, shipped  # noqa: E402  (round 20's)


def main(name: str) -> None:
    budget, groups = shipped(HERE.parent / "arithmetic-r25" / "report.json")
    passives = (("B2 (shipped)", groups["passive"]), (name, from_runs(Path(f"runs/tuning28/final-arithmetic-{name}"))))
    lines = ["| passive | strategy | passive final | (a) ratio [95% bootstrap] | (a) <= 1/3 | final [95% t] | "
             "(b) | passive (c) drops |", "|---|---|---|---|---|---|---|---|"]
    for pname, passive in passives:
        for strat in ("ee_ts", "bai_ts"):
            lines.append(f"| {pname} | {strat} | {cells(checks(groups[strat], passive, budget))}")
    text = "\n".join(lines)
    print(text)
    (HERE / f"against-{name}.md").write_text(text + "\n")


if __name__ == "__main__":
    main(sys.argv[1])

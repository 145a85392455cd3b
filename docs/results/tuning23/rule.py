"""Round 23's rule (PLAN.md): ee_ts / bai_ts on `sort` seeds 100-103, A16 (recipe-r13) against P32
(round 22's arm): 4-seed mean final, AUC and (a) against RB64 on the same seeds. P32 carries if
ee_ts's AUC is not below A16's by more than 0.005 and its final not by more than 0.01.

    python docs/results/tuning23/rule.py   # writes rule.txt beside it
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tuning22"))
sys.path.insert(0, str(HERE.parent / "tuning20"))
from rule import gains, table  # noqa: E402  (round 22's)

ARMS = {"A16": Path("runs/tuning21/sort-A16"), "P32": Path("runs/tuning23/sort-P32")}
RB64 = Path("runs/tuning20/sort-pas-RB64")


def main() -> None:
    s, lines = table(ARMS, RB64)
    d, diff_lines = gains(s, "P32", "A16")
    lines += diff_lines
    gain, dfinal = d["ee_ts"]
    carries = gain >= -0.005 and dfinal >= -0.01
    lines.append(f"P32 {'carries: run run_reverse.sh' if carries else 'does not carry: recipe-r13 stays the starting recipe'}")
    text = "\n".join(lines)
    print(text)
    (HERE / "rule.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()

"""Round 24's rule (PLAN.md): ee_ts / bai_ts on `arithmetic` seeds 100-103, P32 (round 22) against
P32B1 (burn-in 1 step): 4-seed mean final, AUC and (a) against RB64 on the same seeds. P32B1 is
chosen if ee_ts's AUC is above P32's by more than 0.005 and its final not below by more than 0.01.

    python docs/results/tuning24/rule.py   # writes rule.txt beside it
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tuning22"))
sys.path.insert(0, str(HERE.parent / "tuning20"))
from rule import gains, table  # noqa: E402  (round 22's)

ARMS = {"P32": Path("runs/tuning22/arithmetic-P32"), "P32B1": Path("runs/tuning24/arithmetic-P32B1")}


def main() -> None:
    s, lines = table(ARMS)
    d, diff_lines = gains(s, "P32B1", "P32")
    lines += diff_lines
    gain, dfinal = d["ee_ts"]
    chosen = gain > 0.005 and dfinal >= -0.01
    lines.append("chosen: P32B1 (run run_finals.sh)" if chosen else "chosen: P32 stays (no finals)")
    text = "\n".join(lines)
    print(text)
    (HERE / "rule.txt").write_text(text + "\n")
    sys.exit(0 if chosen else 3)


if __name__ == "__main__":
    main()

"""Round 25's rule, part 1 (PLAN.md): per strategy on `arithmetic` seeds 100-103, the 4-seed mean
final and AUC of P64 and of round 22's P32, and check (a) against RB64 on the same seeds. P64
qualifies for a strategy if its AUC is above P32's by more than 0.005 and its final not below by
more than 0.01; the qualifying strategy with the higher AUC gain is chosen for the finals.

    python docs/results/tuning25/rule.py   # reads runs/tuning2{0,2,5}/...; writes rule.txt beside it
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tuning22"))
from rule import choose, table  # noqa: E402  (round 22's)

ARMS = {"P32": Path("runs/tuning22/arithmetic-P32"), "P64": Path("runs/tuning25/arithmetic-P64")}


def main() -> None:
    s, lines = table(ARMS)
    text = "\n".join([*lines, *choose(s, "P64", "P32")])
    print(text)
    (HERE / "rule.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()

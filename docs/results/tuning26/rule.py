"""Round 26's rule (PLAN.md): per strategy on `style` seeds 100-103, the 4-seed mean final and AUC of
S32 and S16 (recipe-r16-style as shipped), and check (a) against RB64 on the same seeds. S32
qualifies for a strategy if its AUC is above S16's by more than 0.005 and its final not below by
more than 0.01; the qualifying strategy with the higher AUC gain is chosen for the finals.

    python docs/results/tuning26/rule.py   # reads runs/tuning2{0,6}/...; writes rule.txt beside it
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tuning22"))
from rule import choose, table  # noqa: E402  (round 22's)

ARMS = {"S16": Path("runs/tuning26/style-S16"), "S32": Path("runs/tuning26/style-S32")}
RB64 = Path("runs/tuning20/style-pas-RB64")


def main() -> None:
    s, lines = table(ARMS, RB64)
    text = "\n".join([*lines, *choose(s, "S32", "S16")])
    print(text)
    (HERE / "rule.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()

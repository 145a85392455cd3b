"""Round 27's rule (PLAN.md): per strategy and arm on `style` seeds 100-103, the 4-seed mean final
and AUC of G100 and G200 (a prompts-per-step schedule) and S16 (recipe-r16-style as shipped, round
26's runs), and check (a) against RB64 on the same seeds; round 22's rule over several arms.

    python docs/results/tuning27/rule.py   # reads runs/tuning2{0,6,7}/...; writes rule.txt beside it
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tuning22"))
from rule import choose_among, table  # noqa: E402  (round 22's)

ARMS = {"S16": Path("runs/tuning26/style-S16"), "G100": Path("runs/tuning27/style-G100"),
        "G200": Path("runs/tuning27/style-G200")}
RB64 = Path("runs/tuning20/style-pas-RB64")


def main() -> None:
    s, lines = table(ARMS, RB64)
    text = "\n".join([*lines, *choose_among(s, ARMS, "S16")])
    print(text)
    (HERE / "rule.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()

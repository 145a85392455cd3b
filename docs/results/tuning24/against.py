"""Round 24's finals (PLAN.md): issue 14's checks (a), (b) for ee_ts / bai_ts of
recipe-r24-arithmetic (runs/tuning24/final-arithmetic, seeds 0-9) beside the shipped recipe-r13
curves, against both passives on `arithmetic` seeds 0-9 (round 22's table, other finals).

    python docs/results/tuning24/against.py   # writes against.md beside it
"""
import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("against22", HERE.parent / "tuning22/against.py")
against22 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(against22)

if __name__ == "__main__":
    against22.main(Path("runs/tuning24/final-arithmetic"), "recipe-r24", HERE / "against.md")

"""Round 25's finals (PLAN.md): checks (a), (b) for P64 (runs/tuning25/final-arithmetic, seeds 0-9)
beside recipe-r13 and recipe-r22 against the shipped passive and RB64 on `arithmetic` seeds 0-9.

    python docs/results/tuning25/against.py   # writes against.md beside it
"""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tuning22"))
from against import main  # noqa: E402  (round 22's, which reads round 20's passives)

if __name__ == "__main__":
    main(Path("runs/tuning25/final-arithmetic"), "P64", HERE / "against.md")

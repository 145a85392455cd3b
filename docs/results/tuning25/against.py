"""Round 25's finals (PLAN.md): checks (a), (b) for P64's bai_ts (runs/tuning25/final-arithmetic,
seeds 0-9) beside recipe-r22's ee_ts / bai_ts (runs/tuning22/final-arithmetic) and recipe-r13's
shipped bai_ts, against the shipped passive (B2) and round 20's RB64 on `arithmetic` seeds 0-9.

    python docs/results/tuning25/against.py   # writes against.md beside it
"""
import importlib.util
from pathlib import Path

HERE = Path(__file__).resolve().parent
# round 22's against.py (which reads round 20's passives), loaded under its own name: it imports
# round 20's module, also called `against`
_spec = importlib.util.spec_from_file_location("against22", HERE.parent / "tuning22/against.py")
against22 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(against22)

if __name__ == "__main__":
    against22.main((("recipe-r22", Path("runs/tuning22/final-arithmetic")), ("P64", Path("runs/tuning25/final-arithmetic"))),
         HERE / "against.md")

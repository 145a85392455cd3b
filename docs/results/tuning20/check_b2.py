"""Round 20's determinism check (PLAN.md): the B2 run rerun on this session's starting policies
against round 18's run of the same seed, eval for eval (expected win rate).

    python docs/results/tuning20/check_b2.py runs/tuning20/check-B2 docs/results/tuning18/arithmetic-pas-B2/report.json
"""
import json
import sys
from pathlib import Path

import numpy as np

from duel.report import load_run


def main(sweep: Path, report: Path) -> None:
    runs = {r["seed"]: r for t in json.loads(report.read_text())["tasks"].values()
            for r in t["strategies"]["passive"]["runs"]}
    for d in sorted(x for x in sweep.iterdir() if (x / "config.yaml").is_file()):
        r = load_run(d)
        s = r.series("expected_win_rate")
        old = runs[r.seed]
        same = (np.array_equal(s.queries, np.asarray(old["eval_queries"], float))
                and np.allclose(s.values, old["values"], rtol=0, atol=1e-9))
        diff = np.max(np.abs(s.values - np.asarray(old["values"]))) if len(s.values) == len(old["values"]) else np.inf
        print(f"seed {r.seed}: {len(s.values)} evals, largest difference {diff:.2e}: "
              f"{'equal to round 18' if same else 'DIFFERENT from round 18'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))

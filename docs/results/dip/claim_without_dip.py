"""Does check (a) on `arithmetic` depend on the falls that fail check (c)? (twenty-second session)

    python docs/results/dip/claim_without_dip.py > docs/results/dip/claim_without_dip.txt

(a)'s ratio is a strategy's queries to passive's final seed-mean, over passive's own queries to
it. For both passives of the shipped `arithmetic` claim (B2, `runs/r25/arithmetic`, and round 20's
RB64, `runs/tuning20/final-arithmetic-RB64`, seeds 0-9), this finds the falls of check (c), replaces
each fallen eval by the mean of its two neighbours, and prints passive's final and its queries to
it with and without the fall.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from duel import report_stats as st  # noqa: E402
from duel.metrics import read_metrics  # noqa: E402

PASSIVES = {"B2 (shipped passive)": "runs/r25/arithmetic", "RB64 (round 20)": "runs/tuning20/final-arithmetic-RB64"}
BUDGET = 640


def curve(run: str):
    ev = read_metrics(run, "eval")
    return tuple(np.array([r[k] for r in ev], float)
                 for k in ("queries", "expected_win_rate", "expected_win_rate_lo", "expected_win_rate_hi"))


def main() -> None:
    for name, sweep in PASSIVES.items():
        runs = [f"{sweep}/passive-s{s}" for s in range(10)]
        curves = [curve(r) for r in runs]
        mended = []
        for run, (q, v, lo, hi) in zip(runs, curves):
            v = v.copy()
            for d in st.collapses(q, v, lo, hi, after=BUDGET / 5)[0]:  # check (c)'s falls, as the report finds them
                k = int(np.flatnonzero(q == d["to_queries"])[0])
                v[k] = (v[k - 1] + v[k + 1]) / 2
                print(f"{name}: {Path(run).name} falls {-d['drop']:+.4f} from {d['from_queries']:.0f} to "
                      f"{d['to_queries']:.0f} queries (half-width {d['half_width']:.4f}); replaced by {v[k]:.4f}")
            mended.append((q, v))
        for label, cs in (("as run", [(q, v) for q, v, _, _ in curves]), ("fall mended", mended)):
            q, m = st.seed_mean_curve(cs)
            print(f"  {label:12s} final {m[-1]:.4f}, queries to it {st.queries_to_target(q, m, m[-1]):.0f} "
                  f"of {BUDGET}, AUC {st.auc(q, m, BUDGET):.4f}")


if __name__ == "__main__":
    main()

"""Passive's jitter on its plateau (issue 14, check (c)): per run, the eval pairs after the first
fifth of the budget, the falls larger than the later eval's half-width (check (c)'s "drops"),
the largest fall over its half-width, the final and the mean after the first fifth.

    python docs/results/tuning10/jitter.py RUN_DIR_OR_SWEEP_DIR ...   # passive runs only
"""
import sys
from pathlib import Path

import numpy as np

from duel import report_stats as st
from duel.report import COLLAPSE_AFTER, load_run


def runs(paths):
    for p in map(Path, paths):
        dirs = [p] if (p / "config.yaml").is_file() else sorted(d for d in p.iterdir() if (d / "config.yaml").is_file())
        for d in dirs:
            r = load_run(d)
            if r.strategy == "passive":
                yield r


def main(paths):
    rows = []
    print("| run | pairs | drops | largest fall / half-width | sd of step changes | after 1/5: mean | final |")
    print("|---|---|---|---|---|---|---|")
    for r in runs(paths):
        s = r.series("expected_win_rate")
        after = COLLAPSE_AFTER * r.budget
        drops, n = st.collapses(s.queries, s.values, s.lo, s.hi, after)
        i = np.nonzero(s.queries[:-1] >= after)[0] + 1  # later eval of each checked pair
        falls = (s.values[i - 1] - s.values[i]) / ((s.hi[i] - s.lo[i]) / 2)
        diffs = s.values[i] - s.values[i - 1]
        late = s.values[s.queries >= after]
        rows.append((len(i), len(drops), falls.max(), diffs.std(), late.mean(), s.values[-1]))
        print(f"| {r.path.parent.name}/{r.path.name} | {len(i)} | {len(drops)} | {falls.max():+.2f} | "
              f"{diffs.std():.4f} | {late.mean():.4f} | {s.values[-1]:.4f} |")
    a = np.array(rows, float)
    print(f"| **all {len(a)} runs** | {int(a[:, 0].sum())} | {int(a[:, 1].sum())} | mean {a[:, 2].mean():+.2f}, "
          f"max {a[:, 2].max():+.2f} | {a[:, 3].mean():.4f} | {a[:, 4].mean():.4f} | {a[:, 5].mean():.4f} |")


if __name__ == "__main__":
    main(sys.argv[1:])

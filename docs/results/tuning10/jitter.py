"""Passive's jitter on its plateau (issue 14, check (c)): per run, the eval pairs after the first
fifth of the budget, the falls larger than the later eval's half-width (check (c)'s "drops"),
the largest fall over its half-width, the sd of the step-to-step changes, the mean after the
first fifth and the final. Reads run directories (or sweep directories of them), or the
`report.json` of a `duel report` whose runs are gone (its passive group's runs).

    python docs/results/tuning10/jitter.py RUN_DIR_OR_SWEEP_DIR_OR_REPORT_JSON ...   # passive runs only
    # the replay table of PLAN.md (runs of earlier rounds, kept only in their reports):
    python docs/results/tuning10/jitter.py docs/results/{sort,style}-sweeps3b/report.json \\
        docs/results/tuning5/{sort,style}-pas-rp{3,10,30}/report.json
"""
import json
import sys
from pathlib import Path

import numpy as np

from duel import report_stats as st
from duel.report import COLLAPSE_AFTER, load_run


def passive_runs(paths):
    """-> (name, queries, values, lo, hi, budget) of every passive run."""
    for p in map(Path, paths):
        if p.suffix == ".json":
            for task in json.loads(p.read_text())["tasks"].values():
                for label, g in task["strategies"].items():  # groups: "passive" [+ settings]
                    if label.split()[0] != "passive":
                        continue
                    for r in g["runs"]:
                        budget = g["no_collapse"]["after_queries"] / COLLAPSE_AFTER
                        yield (f"{p.parent.name}/s{r['seed']}", *(np.asarray(r[k], float) for k in
                               ("eval_queries", "values", "lo", "hi")), budget)
            continue
        dirs = [p] if (p / "config.yaml").is_file() else sorted(d for d in p.iterdir() if (d / "config.yaml").is_file())
        for d in dirs:
            r = load_run(d)
            if r.strategy == "passive":
                s = r.series("expected_win_rate")
                yield f"{r.path.parent.name}/{r.path.name}", s.queries, s.values, s.lo, s.hi, r.budget


def main(paths):
    rows = []
    print("| run | pairs | drops | largest fall / half-width | sd of step changes | after 1/5: mean | final |")
    print("|---|---|---|---|---|---|---|")
    for name, q, v, lo, hi, budget in passive_runs(paths):
        after = COLLAPSE_AFTER * budget
        drops, n = st.collapses(q, v, lo, hi, after)
        i = np.nonzero(q[:-1] >= after)[0] + 1  # later eval of each checked pair
        falls = (v[i - 1] - v[i]) / ((hi[i] - lo[i]) / 2)
        diffs = v[i] - v[i - 1]
        rows.append((len(i), len(drops), falls.max(), diffs.std(), v[q >= after].mean(), v[-1]))
        print(f"| {name} | {len(i)} | {len(drops)} | {falls.max():+.2f} | "
              f"{diffs.std():.4f} | {rows[-1][4]:.4f} | {v[-1]:.4f} |")
    a = np.array(rows, float)
    print(f"| **all {len(a)} runs** | {int(a[:, 0].sum())} | {int(a[:, 1].sum())} | mean {a[:, 2].mean():+.2f}, "
          f"max {a[:, 2].max():+.2f} | {a[:, 3].mean():.4f} | {a[:, 4].mean():.4f} | {a[:, 5].mean():.4f} |")


if __name__ == "__main__":
    main(sys.argv[1:])

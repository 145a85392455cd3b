"""Round 18's rule (PLAN.md), applied to the tuning runs: per task and variant the 4-seed means of
the final and of the evals after the first fifth, the step-to-step sd and the check-(c) drops;
a candidate qualifies if on every task its two means are >= B2's - 0.01; the qualifier with the
lowest step sd over its 12 runs replaces B2 if that sd is below B2's.

    python docs/results/tuning18/rule.py runs/tuning18
    python docs/results/tuning18/rule.py --variants B2:runs/tuning18 WU8:runs/tuning19 ...  # round 19
    (the first variant is the incumbent; each reads ROOT/TASK-pas-NAME)
"""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tuning10"))
from jitter import passive_runs  # noqa: E402

from duel import report_stats as st  # noqa: E402
from duel.report import COLLAPSE_AFTER  # noqa: E402

TASKS = ("arithmetic", "sort", "style")
VARIANTS = ("B2", "B3", "B5")


def summary(root: Path, task: str, variant: str) -> dict:
    rows = []
    d = root / f"{task}-pas-{variant}"
    if not any((x / "config.yaml").is_file() for x in d.iterdir()):
        d = d / "report.json"  # the runs are gone: their report (round 20 reads round 18's B2 so)
    for _, q, v, lo, hi, budget in passive_runs([d]):
        after = COLLAPSE_AFTER * budget
        drops, _ = st.collapses(q, v, lo, hi, after)
        i = np.nonzero(q[:-1] >= after)[0] + 1
        rows.append((v[-1], v[q >= after].mean(), (v[i] - v[i - 1]).std(), len(drops), len(i)))
    a = np.array(rows, float)
    return {"n": len(a), "final": a[:, 0].mean(), "after": a[:, 1].mean(), "sd": a[:, 2].mean(),
            "drops": int(a[:, 3].sum()), "pairs": int(a[:, 4].sum())}


def main(roots: dict[str, Path]) -> None:
    variants = tuple(roots)
    s = {(t, b): summary(roots[b], t, b) for t in TASKS for b in variants}
    print("| task | variant | runs | final | mean after 1/5 | step sd | drops / pairs |")
    print("|---|---|---|---|---|---|---|")
    for t in TASKS:
        for b in variants:
            x = s[t, b]
            print(f"| {t} | {b} | {x['n']} | {x['final']:.4f} | {x['after']:.4f} | {x['sd']:.4f} | "
                  f"{x['drops']} / {x['pairs']} |")
    inc = variants[0]
    sd = {b: np.mean([s[t, b]["sd"] for t in TASKS]) for b in variants}
    print()
    qualified = []
    for b in variants[1:]:
        ok = all(s[t, b]["final"] >= s[t, inc]["final"] - 0.01 and s[t, b]["after"] >= s[t, inc]["after"] - 0.01
                 for t in TASKS)
        print(f"{b}: step sd over 12 runs {sd[b]:.4f} ({inc} {sd[inc]:.4f}); qualifies: {ok}")
        if ok:
            qualified.append(b)
    best = min(qualified, key=sd.get, default=None)
    if best is not None and sd[best] < sd[inc]:
        print(f"rule: {best} replaces {inc}")
    else:
        print(f"rule: {inc} stands")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--variants"]:
        main({v.split(":")[0]: Path(v.split(":")[1]) for v in args[1:]})
    else:
        root = Path(args[0] if args else "runs/tuning18")
        main({b: root for b in VARIANTS})

"""Is passive's one "collapse" on `arithmetic` (round 7's final runs, seed 0: expected win rate
0.464 at 320 queries, 0.436 at 400, half-width 0.026) eval noise or the policy? (issue 14, check c)

1. The same run with an eval after every step (eval.every=1; an eval draws from its own key
   stream, so training is unchanged, and the evals at the old run's steps must equal its own).
2. The policies after 400 and 416 queries (budget 400 / 416: runs stop there and checkpoint),
   each evaluated with the eval sampling keys of 12 seeds: the spread is the eval's own noise;
   the paired difference is the policies'.
   python docs/results/collapse/measure.py > docs/results/collapse/README.md   (~4 min, 2 cores)
"""

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np

RUN = Path("runs/sweeps7/arithmetic/passive-s0")  # run_final7.sh arithmetic
OUT = Path("runs/collapse")


def duel_run(run_dir: Path, *sets: str) -> None:
    if not (run_dir / "metrics.jsonl").is_file():
        args = ["duel", "run", str(RUN / "config.yaml"), "--run-dir", str(run_dir)]
        for s in sets:
            args += ["--set", s]
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def evals(run_dir: Path) -> dict[int, float]:
    from duel.report import load_run

    return {r["queries"]: r["expected_win_rate"] for r in load_run(run_dir).evals}


def key_spread(run_dir: Path, seeds: range) -> np.ndarray:
    from duel.evaluate import expected_win_rate
    from learner.evaluation import Evaluator
    from learner.offline import restored_learner

    learner, _ = restored_learner(run_dir)
    model = learner.policy_model()
    return np.array([expected_win_rate(Evaluator(dataclasses.replace(learner.cfg, seed=s),
                                                 learner.model_dir)._sampled(model)[0]).mean
                     for s in seeds])


def main() -> None:
    every1 = OUT / "every1"
    duel_run(every1, "eval.every=1")
    old, fine = evals(RUN), evals(every1)
    same = all(abs(fine[q] - v) < 1e-12 for q, v in old.items())
    print("# Passive's drop on `arithmetic` seed 0: eval noise or the policy?\n")
    print(__doc__.split("\n\n", 1)[1].replace("   python", "    python"))
    print(f"Evals of the eval.every=1 run at the old run's {len(old)} evals equal them: **{same}**.\n")
    print("| queries | expected win rate, eval every step | the old run's eval |")
    print("|---|---|---|")
    for q in sorted(fine):
        if 240 <= q <= 480:
            print(f"| {q} | {fine[q]:.4f} | {old.get(q, float('nan')):.4f} |".replace("| nan |", "| |"))
    steps = sorted(fine)
    diffs = np.diff([fine[q] for q in steps if q >= 128])
    print(f"\nAfter 1/5 of the budget, step-to-step changes: sd {diffs.std(ddof=1):.4f}, "
          f"largest fall {-diffs.min():.4f}.\n")
    seeds = range(12)
    spread = {}
    for b in (400, 416):
        d = OUT / f"budget{b}"
        duel_run(d, f"budget={b}", "eval.every=1000")
        spread[b] = key_spread(d, seeds)
    print("| policy after | eval keys of 12 seeds: mean | sd (the eval's own noise) | the run's own key |")
    print("|---|---|---|---|")
    for b, v in spread.items():
        print(f"| {b} queries | {v.mean():.4f} | {v.std(ddof=1):.4f} | {v[0]:.4f} |")
    d = spread[416] - spread[400]
    print(f"\nPaired difference (416 − 400 queries) over the 12 keys: {d.mean():+.4f} "
          f"(sd {d.std(ddof=1):.4f}, min {d.min():+.4f}, max {d.max():+.4f}).")


if __name__ == "__main__":
    sys.exit(main())

"""What the paid pairs of a sweep were: per strategy, how often the oracle could not tell the two
responses apart, and at what gold-reward level the pairs sit (issue 14, hypothesis 3).

    python bench/pair_stats.py runs/sweeps/demo-pooled [--json bench/results/pair_stats.json]

Reads every run directory's ledger (a simulated oracle records the gold rewards of both
responses in each entry's metadata: reward_a, reward_b) and prints, per strategy (mean over
seeds): paid pairs, the share with equal gold rewards (a label that carries no information
about which response is better), the mean gold reward of the pair and of its better response,
the mean gap |r_a - r_b|, and the share of pairs that hold the best reward any response can get
on the task (`--top`, the arithmetic task's exact answer: 5). Runs with mixed preference learning
also get `erm_label_agree`: how often the ERM's synthetic labels point at the response with the
higher gold reward (the train rows' `synthetic_gold_agree`, mean over the steps that have one).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np


def erm_label_agree(run_dir: Path) -> float | None:
    """Mean of the train rows' `synthetic_gold_agree` in RUN_DIR/metrics.jsonl (rows without one,
    or NaN: steps with no ERM label or only gold ties, are left out); None when no row has one."""
    vals = []
    path = Path(run_dir) / "metrics.jsonl"
    for line in path.read_text().splitlines() if path.is_file() else []:
        v = json.loads(line).get("synthetic_gold_agree")
        if v is not None and v == v:
            vals.append(float(v))
    return float(np.mean(vals)) if vals else None


def run_stats(run_dir: Path, top: float | None = None) -> dict | None:
    from duel.ledger import Ledger

    recs = Ledger(run_dir, readonly=True).records()
    ra = np.array([r["metadata"].get("reward_a", np.nan) for r in recs], float)
    rb = np.array([r["metadata"].get("reward_b", np.nan) for r in recs], float)
    ok = ~(np.isnan(ra) | np.isnan(rb))
    if not ok.any():
        return None
    ra, rb = ra[ok], rb[ok]
    out = {"pairs": int(ok.sum()), "equal_reward": float(np.mean(ra == rb)),
           "mean_reward": float(np.mean((ra + rb) / 2)), "mean_best": float(np.mean(np.maximum(ra, rb))),
           "mean_gap": float(np.mean(np.abs(ra - rb)))}
    if top is not None:
        out["has_top"] = float(np.mean(np.maximum(ra, rb) >= top))
    agree = erm_label_agree(run_dir)
    if agree is not None:
        out["erm_label_agree"] = agree
    return out


def sweep_stats(sweep_dir: Path, top: float | None = None) -> dict:
    """{strategy: {field: mean over seeds, "seeds": n}}, run directories named <strategy>-s<seed>."""
    per = defaultdict(list)
    for d in sorted(p for p in Path(sweep_dir).iterdir() if (p / "ledger").is_dir()):
        s = run_stats(d, top)
        if s is not None:
            per[d.name.rsplit("-s", 1)[0]].append(s)
    return {k: {**{f: float(np.mean([r[f] for r in v])) for f in v[0] if all(f in r for r in v)},
                "seeds": len(v)} for k, v in per.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sweep_dirs", nargs="+")
    ap.add_argument("--top", type=float, default=None, help="the task's best gold reward")
    ap.add_argument("--json", default=None, help="write the numbers here")
    a = ap.parse_args(argv)
    result = {}
    for sd in a.sweep_dirs:
        stats = sweep_stats(Path(sd), a.top)
        result[sd] = stats
        print(f"\n{sd}")
        cols = ["pairs", "equal_reward", "mean_reward", "mean_best", "mean_gap"] + (["has_top"] if a.top else [])
        cols += ["erm_label_agree"] if any("erm_label_agree" in v for v in stats.values()) else []
        print("| strategy | seeds | " + " | ".join(cols) + " |")
        print("|---" * (len(cols) + 2) + "|")
        cell = lambda v, c: "–" if c not in v else f"{v[c]:.0f}" if c == "pairs" else f"{v[c]:.3f}"
        for k, v in sorted(stats.items()):
            print(f"| {k} | {v['seeds']} | " + " | ".join(cell(v, c) for c in cols) + " |")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

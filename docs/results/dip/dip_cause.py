"""Is check (c)'s one failing dip predicted by anything the run logs? (twenty-second session)

    python docs/results/dip/dip_cause.py runs/r25/arithmetic > docs/results/dip/dip_cause.txt

For every passive run of the sweep (recipe-r25-arithmetic's passive, seeds 0-9) and every pair of
consecutive evals after the first fifth of the budget (check (c)'s pairs), it puts the change of
the expected win rate beside what the steps between the two evals logged: the share of paid labels
that go against the gold reward (the oracle's label noise), the fresh batch's accuracy (share of
new pairs the policy's implicit reward already ranks as the oracle does), its KL to the reference
(mean and max), the gradient norm (max), the share of paid pairs with equal gold rewards, and the
gold reward of the chosen responses. Prints each quantity's correlation with the change over the
pairs, and the pairs with the largest falls.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from duel.metrics import read_metrics  # noqa: E402


def intervals(run: Path, budget: int) -> list[dict]:
    ledger = [json.loads(line) for f in sorted((run / "ledger").glob("segment-*.jsonl")) for line in open(f)]
    ev = {r["step"]: r for r in read_metrics(run, "eval")}
    tr = {r["step"]: r for r in read_metrics(run, "train")}
    steps = sorted(ev)
    out = []
    for a, b in zip(steps, steps[1:]):
        if ev[a]["queries"] < budget / 5:
            continue
        paid = [e for e in ledger if a <= e["step"] < b]
        ra = np.array([e["metadata"]["reward_a"] for e in paid])
        rb = np.array([e["metadata"]["reward_b"] for e in paid])
        a_won = np.array([e["label"] for e in paid]) == 1
        differ = ra != rb
        rows = [tr[k] for k in range(a + 1, b + 1)]
        out.append({
            "run": run.name, "queries": f"{ev[a]['queries']}->{ev[b]['queries']}",
            "change": ev[b]["expected_win_rate"] - ev[a]["expected_win_rate"],
            "half_width": (ev[b]["expected_win_rate_hi"] - ev[b]["expected_win_rate_lo"]) / 2,  # check (c)'s
            "label_against_gold": float(np.mean((ra > rb)[differ] != a_won[differ])) if differ.any() else 0.0,
            "fresh_accuracy": float(np.mean([r["accuracy"] for r in rows])),
            "kl_mean": float(np.mean([r["kl"] for r in rows])),
            "kl_max": float(np.max([r["kl"] for r in rows])),
            "grad_norm_max": float(np.max([r["grad_norm"] for r in rows])),
            "equal_gold": float(np.mean(~differ)),
            "chosen_gold": float(np.mean(np.where(a_won, ra, rb))),
        })
    return out


def main(sweep: str) -> None:
    runs = sorted(Path(sweep).glob("passive-s*"), key=lambda p: int(p.name.split("-s")[1]))
    if not runs:
        raise SystemExit(f"{sweep}: no passive-s* runs")
    rows = []
    for run in runs:
        cfg = (run / "config.yaml").read_text()
        budget = int(next(line.split(":")[1] for line in cfg.splitlines() if line.startswith("budget:")))
        rows += intervals(run, budget)
    change = np.array([r["change"] for r in rows])
    print(f"{len(runs)} passive runs of {sweep}, {len(rows)} pairs of consecutive evals after the first fifth")
    print(f"falls larger than the later eval's half-width (check (c)): "
          f"{sum(r['change'] < -r['half_width'] for r in rows)}")
    print("\ncorrelation of the change in expected win rate with what the steps between logged:")
    for k in ("label_against_gold", "fresh_accuracy", "kl_mean", "kl_max", "grad_norm_max", "equal_gold", "chosen_gold"):
        x = np.array([r[k] for r in rows])
        c = np.corrcoef(change, x)[0, 1] if x.std() > 0 else float("nan")  # nan: constant
        print(f"  {k:20s} r = {c:+.3f}   (median {np.median(x):.3f}, range {x.min():.3f} .. {x.max():.3f})")
    print("\nthe five largest falls:")
    for r in sorted(rows, key=lambda r: r["change"])[:5]:
        print("  " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in r.items()))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/r25/arithmetic")

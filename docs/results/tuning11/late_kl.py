"""Passive's late falls on `reverse` beside its KL to the reference: per passive run, the train
rows' `kl` (policy vs reference on the step's pairs) and `margin` at the loop steps of the last
evals, and the eval values there.

    python docs/results/tuning11/late_kl.py runs/ema/reverse runs/ema/reverse-s5
"""
import json
import sys
from pathlib import Path

STEPS = (25, 30, 35, 40)  # loop steps of the evals at 400, 480, 560, 640 queries


def rows(run_dir: Path, kind: str) -> dict:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r for r in map(json.loads, filter(None, lines)) if r.get("kind") == kind}


def main(paths):
    print("| run | eval at 400 / 480 / 560 / 640 queries | kl at those steps | margin at those steps |")
    print("|---|---|---|---|")
    for p in map(Path, paths):
        for d in sorted(p.glob("passive-s*"), key=lambda d: int(d.name.rsplit("-s", 1)[1])):
            ev, tr = rows(d, "eval"), rows(d, "train")
            cells = [" / ".join(fmt.format(get(s)) for s in STEPS) for fmt, get in (
                ("{:.3f}", lambda s: ev[s]["expected_win_rate"]), ("{:.2f}", lambda s: tr[s]["kl"]),
                ("{:+.2f}", lambda s: tr[s]["margin"]))]
            print(f"| {d.parent.name}/{d.name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])

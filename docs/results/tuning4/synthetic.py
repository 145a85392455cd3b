"""Per run: how right the ERM's synthetic labels were against the gold reward (issue 14, round 4).

    python docs/results/tuning4/synthetic.py runs/tuning4 runs/sweeps5/sort ...

Reads each run's metrics.jsonl train rows (`synthetic_gold_agree`, `synthetic_gold_ties`,
`erm_unsure`: logged with a simulated oracle, no query) and prints a markdown table: mean over
steps of the agreement and tie shares, the share of ERM-chosen prompts dropped as unsure, the
synthetic labels used, and the final expected win rate."""

import json
import sys
from pathlib import Path

import numpy as np


def row(run: Path, root: Path) -> list[str] | None:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    train = [r for r in rows if r.get("kind") == "train"]
    syn = [r for r in train if "synthetic_gold_agree" in r]
    if not syn:
        return None
    evals = [r for r in rows if "expected_win_rate" in r]
    unsure = [r["erm_unsure"] for r in train if "erm_unsure" in r]
    return [str(run.parent.relative_to(root.parent)), run.name, f"{np.mean([r['synthetic_gold_agree'] for r in syn]):.3f}",
            f"{np.mean([r['synthetic_gold_ties'] for r in syn]):.3f}",
            f"{np.mean(unsure):.2f}" if unsure else "-", str(train[-1]["synthetic"]),
            f"{evals[-1]['expected_win_rate']:.3f}" if evals else "-"]


def main(paths: list[str]) -> None:
    print("| sweep | run | ERM label agrees with gold (mean over steps) | gold tie | ERM prompts dropped as unsure | synthetic labels used | final expected win rate |")
    print("|---|---|---|---|---|---|---|")
    for p in paths:
        runs = sorted(d.parent for d in Path(p).glob("**/metrics.jsonl"))
        for r in runs:
            cells = row(r, Path(p))
            if cells:
                print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])

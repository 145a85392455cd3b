"""Do two runs train alike? eval.ema changes only the eval rows: a run with it must make the same
labels and updates as the same run without it. Compares, per run directory of NEW (a run or a
sweep directory) with the run of the same name under OLD: the train rows of metrics.jsonl
(timings aside) and the ledger entries (latency metadata aside).

    python docs/results/tuning11/same_training.py NEW_DIR OLD_DIR
"""
import json
import sys
from pathlib import Path

from duel.ledger import read_ledger


def train_rows(run: Path) -> list[dict]:
    rows = (json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip())
    return [{k: v for k, v in r.items() if not k.startswith("time_")} for r in rows if r.get("kind") == "train"]


def ledger(run: Path) -> list[dict]:
    out = []
    for e in read_ledger(run):
        d = {k: v for k, v in vars(e).items() if k != "metadata"}
        d["metadata"] = {k: v for k, v in e.metadata.items() if k not in ("latency_s", "retries")}
        out.append(d)
    return out


def main(new: Path, old: Path) -> int:
    runs = [new] if (new / "config.yaml").is_file() else sorted(d for d in new.iterdir() if (d / "config.yaml").is_file())
    same = differ = missing = 0
    for run in runs:
        prev = old if (old / "config.yaml").is_file() else old / run.name
        if not (prev / "metrics.jsonl").is_file():
            missing += 1
            print(f"{run}: no {prev}/metrics.jsonl to compare with")
            continue
        t_new, t_old = train_rows(run), train_rows(prev)
        l_new, l_old = ledger(run), ledger(prev)
        if t_new == t_old and l_new == l_old:
            same += 1
        else:
            differ += 1
            print(f"{run}: differs from {prev} (train rows {len(t_new)} vs {len(t_old)}, equal {t_new == t_old}; "
                  f"ledger {len(l_new)} vs {len(l_old)} entries, equal {l_new == l_old})")
    print(f"{new}: {same} runs train exactly as in {old}, {differ} differ, {missing} without a counterpart")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))

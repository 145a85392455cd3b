"""What ee_ts's labels teach, by gold reward (docs/results/tuning14/PLAN.md, part 3): per task and
third of the budget, the mean gold reward of the response each synthetic label prefers, of all
candidates of those prompts (the policy's level) and of each prompt's best candidate (train rows'
synthetic_gold_*), the synthetic labels' agreement with gold; and the same for the paid pairs (from
the ledger: the oracle-preferred response, both responses). Also checks that each `arithmetic`
run's evals equal part 1's run of the same seed (the new train-row fields change no training).

    bash docs/results/tuning14/run_levels.sh
    PYTHONPATH=docs/results/heldout python docs/results/tuning14/levels.py   # reverse's task module
"""
from pathlib import Path

import numpy as np

from actors.oracle import OracleSpec
from duel.config import load_config
from duel.ledger import read_ledger
from duel.metrics import read_metrics
from duel.oracles import make_oracle
from duel.report import load_run
from learner.setup import resolve_task

THIRDS = ((0, 160), (160, 320), (320, 640))


def gold_fn(run):
    cfg = load_config(run / "config.yaml")
    return make_oracle(OracleSpec.from_config(cfg).oracle_config(), task=resolve_task(cfg)).rewards


def paid_levels(runs, gold, lo, hi):
    """(mean gold of the oracle-preferred response, of both responses) over the paid pairs of
    `runs` that are queries lo+1..hi (ledger entry i, 0-based, is query i + 1)."""
    es = [e for r in runs for i, e in enumerate(read_ledger(r)) if lo < i + 1 <= hi]
    ra = np.asarray(gold([e.prompt for e in es], [e.response_a for e in es]), float)
    rb = np.asarray(gold([e.prompt for e in es], [e.response_b for e in es]), float)
    lab = np.array([e.label for e in es], bool)
    return np.mean(np.where(lab, ra, rb)), np.mean((ra + rb) / 2)


def evals(d):
    return [(r["queries"], r.get("expected_win_rate")) for r in load_run(d).evals]


print("| task | queries | synthetic: agree | chosen | candidates' mean | best | (chosen − mean) / (best − mean) | paid: preferred | paid: both |")
print("|---|---|---|---|---|---|---|---|---|")
for task in ("sort", "arithmetic", "style", "reverse"):
    runs = sorted(Path(f"runs/tuning14/levels-{task}").glob("ee_ts-s*"))
    if not runs:
        continue
    rows = {r: read_metrics(r, "train") for r in runs}
    gold = gold_fn(runs[0])
    for lo, hi in THIRDS:
        tr = [x for r in runs for x in rows[r] if lo < x["queries"] <= hi]
        m = {k: np.nanmean([x.get(k, np.nan) for x in tr]) for k in
             ("synthetic_gold_agree", "synthetic_gold_chosen", "synthetic_gold_mean", "synthetic_gold_best")}
        preferred, both = paid_levels(runs, gold, lo, hi)
        print(f"| `{task}` | {lo}-{hi} | {m['synthetic_gold_agree']:.3f} | {m['synthetic_gold_chosen']:.3f} | "
              f"{m['synthetic_gold_mean']:.3f} | {m['synthetic_gold_best']:.3f} | "
              f"{(m['synthetic_gold_chosen'] - m['synthetic_gold_mean']) / (m['synthetic_gold_best'] - m['synthetic_gold_mean']):.2f} | "
              f"{preferred:.3f} | {both:.3f} |")
# passive's paid pairs, same seeds (part 1's runs): the level of a policy trained on oracle labels alone
runs = [Path(f"runs/tuning14/arithmetic-base/passive-s{s}") for s in (100, 101)]
if all(r.is_dir() for r in runs):
    gold = gold_fn(runs[0])
    for lo, hi in THIRDS:
        preferred, both = paid_levels(runs, gold, lo, hi)
        print(f"| `arithmetic`, passive | {lo}-{hi} | – | – | – | – | – | {preferred:.3f} | {both:.3f} |")
# part 4: the same measure under mixed.pair=mean (MP), seeds 100-101 of its runs, whole run
print()
print("| task | D: chosen share of the lift | MP: chosen share | D: synthetic agree | MP: synthetic agree |")
print("|---|---|---|---|---|")
for task in ("sort", "arithmetic", "style"):
    cells = []
    for d in (f"runs/tuning14/levels-{task}", f"runs/tuning14/{task}-MP"):
        rs = [x for s in (100, 101) if (Path(d) / f"ee_ts-s{s}").is_dir()
              for x in read_metrics(Path(d) / f"ee_ts-s{s}", "train")]
        m = {k: np.nanmean([x.get(k, np.nan) for x in rs]) for k in
             ("synthetic_gold_agree", "synthetic_gold_chosen", "synthetic_gold_mean", "synthetic_gold_best")}
        cells.append(((m["synthetic_gold_chosen"] - m["synthetic_gold_mean"])
                      / (m["synthetic_gold_best"] - m["synthetic_gold_mean"]), m["synthetic_gold_agree"]))
    print(f"| `{task}` | {cells[0][0]:.2f} | {cells[1][0]:.2f} | {cells[0][1]:.3f} | {cells[1][1]:.3f} |")
print()
for r in sorted(Path("runs/tuning14/levels-arithmetic").glob("ee_ts-s*")):
    prev = Path("runs/tuning14/arithmetic-base") / r.name
    if prev.is_dir():
        print(f"{r.name}: evals equal part 1's run: {'yes' if evals(r) == evals(prev) else 'NO'}")

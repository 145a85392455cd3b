"""Round 20's addendum (PLAN.md): issue 14's checks (a), (b), (c) for the shipped ee_ts / bai_ts
curves against another passive. First against the shipped passive (must reproduce the shipped
report's numbers), then against passive RB64 (64 pairs per replayed update) on the same seeds.

    python docs/results/tuning20/against.py   # after run_against.sh; writes against.md beside it
"""
import json
from pathlib import Path

import numpy as np

from duel import report_stats as st
from duel.report import COLLAPSE_AFTER, load_run

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent
CASES = {  # task: (shipped report, RB64 sweep)
    "sort": (RESULTS / "sort/report.json", Path("runs/tuning20/final-sort-RB64")),
    "arithmetic": (RESULTS / "tuning13/arithmetic-seeds10/report.json",
                   Path("runs/tuning20/final-arithmetic-RB64")),
}


def shipped(report: Path) -> tuple[float, dict[str, list[dict]]]:
    """-> (budget, {strategy: [run dicts with seed, eval_queries, values, lo, hi]})."""
    task = next(iter(json.loads(report.read_text())["tasks"].values()))
    return task["budget"], {label.split()[0]: g["runs"] for label, g in task["strategies"].items()}


def from_runs(sweep: Path, strategy: str | None = None) -> list[dict]:
    """-> the sweep's runs (of `strategy` only, if given) as run dicts, by seed."""
    out = []
    for d in (x for x in sweep.iterdir() if (x / "config.yaml").is_file()):
        r = load_run(d)
        if strategy in (None, r.strategy):
            s = r.series("expected_win_rate")
            out.append({"seed": r.seed, "eval_queries": s.queries, "values": s.values, "lo": s.lo, "hi": s.hi})
    return sorted(out, key=lambda x: x["seed"])


def curves(runs):
    return [(np.asarray(r["eval_queries"], float), np.asarray(r["values"], float)) for r in runs]


def checks(active: list[dict], passive: list[dict], budget: float) -> dict:
    A, P = curves(active), curves(passive)
    pf = float(np.mean([v[-1] for _, v in P]))
    qa = st.queries_to_target(*st.seed_mean_curve(A), pf)
    qp = st.queries_to_target(*st.seed_mean_curve(P), pf)
    paired = [r["seed"] for r in active] == [r["seed"] for r in passive]
    boot = st.bootstrap_ratio(A, P, None, paired)
    mean, lo, hi = st.t_interval([v[-1] for _, v in A])
    drops = sum(len(st.collapses(r["eval_queries"], r["values"], r["lo"], r["hi"], COLLAPSE_AFTER * budget)[0])
                for r in passive)
    return {"passive_final": pf, "ratio": st.ratio(qa, qp), "lo": boot["lo"], "hi": boot["hi"],
            "final": mean, "final_lo": lo, "b": lo > pf, "drops": drops, "paired": paired}


def cells(c: dict) -> str:
    """The table's columns from passive's final on, of one `checks` result."""
    return (f"{c['passive_final']:.4f} | x{c['ratio']:.3f} [{c['lo']:.2f}, {c['hi']:.2f}] | "
            f"{'yes' if c['ratio'] <= 1 / 3 else 'no'} | {c['final']:.3f} [{c['final_lo']:.3f}, ...] | "
            f"{'yes' if c['b'] else 'no'} | {c['drops']} |")


def main() -> None:
    lines = ["| task | passive | strategy | passive final | (a) ratio [95% bootstrap] | (a) <= 1/3 | "
             "final [95% t] | (b) | passive (c) drops |", "|---|---|---|---|---|---|---|---|---|"]
    for task, (report, sweep) in CASES.items():
        budget, groups = shipped(report)
        for name, passive in (("B2 (shipped)", groups["passive"]), ("RB64", from_runs(sweep))):
            for strat in ("ee_ts", "bai_ts"):
                if strat not in groups:
                    continue
                lines.append(f"| {task} | {name} | {strat} | {cells(checks(groups[strat], passive, budget))}")
    text = "\n".join(lines)
    print(text)
    (HERE / "against.md").write_text(text + "\n")


if __name__ == "__main__":
    main()

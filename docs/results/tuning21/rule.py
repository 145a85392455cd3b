"""Round 21's rule (PLAN.md): per strategy and task the 4-seed mean final and AUC of A16 (shipped)
and A64 (64 pairs per replayed update); A64 is adopted for a strategy if no task's final is below
A16's by more than 0.01 and its AUC is higher on average over the two tasks.

    python docs/results/tuning21/rule.py   # reads runs/tuning21/TASK-A{16,64}; writes rule.txt beside it
"""
from pathlib import Path

import numpy as np

from duel import report_stats as st
from duel.report import load_run

TASKS, ARMS, STRATEGIES = ("arithmetic", "sort"), ("A16", "A64"), ("ee_ts", "bai_ts")
HERE = Path(__file__).resolve().parent


def stats(sweep: Path, strategy: str) -> dict:
    rows = []
    for d in sorted(x for x in sweep.iterdir() if (x / "config.yaml").is_file()):
        r = load_run(d)
        if r.strategy != strategy:
            continue
        s = r.series("expected_win_rate")
        rows.append((r.seed, s.values[-1], st.auc(s.queries, s.values, r.budget)))
    a = np.array(rows, float)
    return {"seeds": a[:, 0].astype(int).tolist(), "final": a[:, 1].mean(), "auc": a[:, 2].mean()}


def main() -> None:
    lines = ["| strategy | task | arm | seeds | final | AUC |", "|---|---|---|---|---|---|"]
    s = {(g, t, a): stats(Path(f"runs/tuning21/{t}-{a}"), g) for g in STRATEGIES for t in TASKS for a in ARMS}
    for g in STRATEGIES:
        for t in TASKS:
            for a in ARMS:
                x = s[g, t, a]
                lines.append(f"| {g} | {t} | {a} | {x['seeds']} | {x['final']:.4f} | {x['auc']:.4f} |")
    lines.append("")
    for g in STRATEGIES:
        ok = all(s[g, t, "A64"]["final"] >= s[g, t, "A16"]["final"] - 0.01 for t in TASKS)
        gain = np.mean([s[g, t, "A64"]["auc"] - s[g, t, "A16"]["auc"] for t in TASKS])
        verdict = "adopts A64" if ok and gain > 0 else "keeps A16"
        lines.append(f"{g}: finals within 0.01: {ok}; mean AUC gain {gain:+.4f} -> {verdict}")
    text = "\n".join(lines)
    print(text)
    (HERE / "rule.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()

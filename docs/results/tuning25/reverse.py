"""Round 25, part 2 (PLAN.md): recipe-r22-arithmetic's ee_ts on the held-out `reverse`
(runs/tuning25/reverse-P32) from the shipped starting policy. First the start evals against the
shipped runs' (docs/results/b2/reverse/report.json); then checks (a), (b) against the shipped
passive on the same seeds, beside the shipped recipe-r13 ee_ts, and the same-seed differences
P32 - recipe-r13 in AUC and final (95% t-interval over seeds).

    python docs/results/tuning25/reverse.py   # writes reverse.md beside it
"""
import sys
from pathlib import Path

import numpy as np

from duel import report_stats as st

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tuning20"))
from against import cells, checks, from_runs, shipped  # noqa: E402  (round 20's)

REPORT, RUNS = HERE.parent / "b2/reverse/report.json", Path("runs/tuning25/reverse-P32")
RB64 = Path("runs/tuning25/reverse-RB64")  # the amendment's stronger passive, if run


def main() -> None:
    budget, groups = shipped(REPORT)
    p32 = from_runs(RUNS, "ee_ts")
    seeds = [r["seed"] for r in p32]
    groups = {k: [r for r in v if r["seed"] in seeds] for k, v in groups.items()}
    passive, r13 = groups["passive"], groups["ee_ts"]
    starts = [(a["seed"], a["values"][0], b["values"][0]) for a, b in zip(p32, passive)]
    same = all(round(x, 4) == round(y, 4) for _, x, y in starts)
    lines = [f"seeds {seeds}; start evals, these runs vs the shipped runs': "
             + "; ".join(f"seed {s}: {x:.4f} vs {y:.4f}" for s, x, y in starts)
             + (" (all equal to 4 decimals)" if same else " (NOT equal: no comparison made)"), ""]
    if same:
        lines += ["| active ee_ts | passive | passive final | (a) ratio [95% bootstrap] | (a) <= 1/3 | final [95% t] | (b) | "
                  "passive (c) drops |", "|---|---|---|---|---|---|---|---|"]
        passives = [("shipped", passive)]
        if RB64.is_dir():
            rb64 = [r for r in from_runs(RB64) if r["seed"] in seeds]
            assert [r["seed"] for r in rb64] == seeds, f"{RB64}: seeds {[r['seed'] for r in rb64]}"
            passives.append(("RB64", rb64))
        lines += [f"| {arm} | {pname} | {cells(checks(active, pas, budget))}"
                  for pname, pas in passives for arm, active in (("recipe-r13 (shipped)", r13), ("recipe-r22 (P32)", p32))]
        auc = lambda r: st.auc(r["eval_queries"], r["values"], budget)  # noqa: E731
        for name, f in (("AUC", auc), ("final", lambda r: r["values"][-1])):
            d = [f(a) - f(b) for a, b in zip(p32, r13)]
            mean, lo, hi = st.t_interval(d)
            lines.append(f"\nsame seeds, P32 - recipe-r13 ee_ts, {name}: {mean:+.4f} [{lo:+.4f}, {hi:+.4f}]"
                         f" (per seed: {', '.join(f'{x:+.3f}' for x in d)})")
        lines.append(f"\nmean final: P32 {np.mean([r['values'][-1] for r in p32]):.4f}, "
                     f"recipe-r13 ee_ts {np.mean([r['values'][-1] for r in r13]):.4f}, "
                     f"passive {np.mean([r['values'][-1] for r in passive]):.4f}")
    text = "\n".join(lines)
    print(text)
    (HERE / "reverse.md").write_text(text + "\n")


if __name__ == "__main__":
    main()

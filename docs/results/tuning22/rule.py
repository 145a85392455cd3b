"""Round 22's rule (PLAN.md): per strategy and arm on `arithmetic` seeds 100-103, the 4-seed mean
final and AUC, and check (a)'s ratio against RB64 on the same seeds. An arm qualifies for a
strategy if its AUC is above A16's by more than 0.005 and its final not below A16's by more than
0.01; the qualifying (strategy, arm) with the highest AUC gain is chosen.

    python docs/results/tuning22/rule.py   # reads runs/tuning2{1,2}/...; writes rule.txt beside it
"""
import sys
from pathlib import Path

import numpy as np

from duel import report_stats as st

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tuning20"))
from against import checks, from_runs  # noqa: E402  (round 20's)

ARMS = {"A16": Path("runs/tuning21/arithmetic-A16"), "R4": Path("runs/tuning22/arithmetic-R4"),
        "P32": Path("runs/tuning22/arithmetic-P32")}
RB64 = Path("runs/tuning20/arithmetic-pas-RB64")
STRATEGIES, BUDGET = ("ee_ts", "bai_ts"), 640


def stats(runs: list[dict], passive: list[dict]) -> dict:
    finals = [r["values"][-1] for r in runs]
    aucs = [st.auc(r["eval_queries"], r["values"], BUDGET) for r in runs]
    c = checks(runs, passive, BUDGET)
    return {"seeds": [r["seed"] for r in runs], "final": float(np.mean(finals)), "auc": float(np.mean(aucs)),
            "ratio": c["ratio"], "lo": c["lo"], "hi": c["hi"]}


def table(arms: dict[str, Path], rb64: Path = RB64) -> tuple[dict, list[str]]:
    """-> ({(strategy, arm): stats}, the table's lines and a blank line) for ee_ts / bai_ts."""
    passive = from_runs(rb64)
    s = {(g, a): stats(from_runs(p, g), passive) for g in STRATEGIES for a, p in arms.items()}
    lines = ["| strategy | arm | seeds | final | AUC | (a) vs RB64 [95% bootstrap] |", "|---|---|---|---|---|---|"]
    for (g, a), x in s.items():
        lines.append(f"| {g} | {a} | {x['seeds']} | {x['final']:.4f} | {x['auc']:.4f} | "
                     f"x{x['ratio']:.3f} [{x['lo']:.2f}, {x['hi']:.2f}] |")
    return s, [*lines, ""]


def gains(s: dict, new: str, base: str) -> tuple[dict, list[str]]:
    """-> ({strategy: (AUC gain, final change)} of arm `new` over `base`, one line per strategy)."""
    d = {g: tuple(s[g, new][k] - s[g, base][k] for k in ("auc", "final")) for g in STRATEGIES}
    return d, [f"{g} {new} - {base}: AUC {a:+.4f}, final {f:+.4f}" for g, (a, f) in d.items()]


def choose(s: dict, new: str, base: str) -> list[str]:
    """Round 22's rule for one arm over a base (rounds 25, 26): it qualifies for a strategy if its
    AUC is above the base's by more than 0.005 and its final not below by more than 0.01; -> one
    line per strategy and the last, the chosen strategy (the higher AUC gain) or none."""
    d, glines = gains(s, new, base)
    lines, best = [], None
    for g, line in zip(STRATEGIES, glines):
        gain, dfinal = d[g]
        ok = gain > 0.005 and dfinal >= -0.01
        lines.append(f"{line} -> {'qualifies' if ok else 'does not qualify'}")
        if ok and (best is None or gain > best[0]):
            best = (gain, g)
    return [*lines, f"chosen: {new} for {best[1]} (AUC {best[0]:+.4f})" if best
            else f"chosen: none ({base} stays, no finals)"]


def choose_among(s: dict, arms, base: str) -> list[str]:
    """Round 22's rule over several arms (round 27 too): each qualifies for a strategy as in
    `choose`; the qualifying (strategy, arm) with the highest AUC gain is chosen -> the lines."""
    lines, best = [], None
    for g in STRATEGIES:
        for a in arms:
            if a == base:
                continue
            gain, dfinal = gains(s, a, base)[0][g]
            ok = gain > 0.005 and dfinal >= -0.01
            lines.append(f"{g} {a}: AUC {gain:+.4f}, final {dfinal:+.4f} -> {'qualifies' if ok else 'does not qualify'}")
            if ok and (best is None or gain > best[0]):
                best = (gain, g, a)
    return [*lines, f"chosen: {best[2]} (for {best[1]}, AUC {best[0]:+.4f})" if best
            else f"chosen: none ({base} stays, no finals)"]


def main() -> None:
    s, lines = table(ARMS)
    text = "\n".join([*lines, *choose_among(s, ARMS, "A16")])
    print(text)
    (HERE / "rule.txt").write_text(text + "\n")

if __name__ == "__main__":
    main()

"""`duel bandit [--strategies ...] [--seeds 5] [--rounds T] [--out DIR]`: the command line of the
dueling-bandit lab (duel.tasks.bandit)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import duel.tasks.bandit as B
from duel.tasks.bandit import LAB_STRATEGIES, UTILITIES, LabConfig, plot, run_lab, summary_rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="duel bandit", description=B.__doc__.split("\n")[0])
    p.add_argument("--strategies", default=",".join(LAB_STRATEGIES), help="comma-separated")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--rounds", type=int, default=LabConfig.rounds)
    p.add_argument("--arms", type=int, default=LabConfig.num_arms)
    p.add_argument("--prompts", type=int, default=LabConfig.prompts_per_round, help="contexts per round")
    p.add_argument("--dim", type=int, default=LabConfig.feature_dim)
    p.add_argument("--utility", choices=UTILITIES, default=LabConfig.utility)
    p.add_argument("--scale", type=float, default=LabConfig.utility_scale, help="utility std")
    p.add_argument("--members", type=int, default=LabConfig.erm.num_members)
    p.add_argument("--hidden", default=",".join(map(str, LabConfig.erm.hidden)))
    p.add_argument("--steps", type=int, default=LabConfig.steps_per_round, help="Adam steps per round")
    p.add_argument("--batch", type=int, default=LabConfig.batch_size)
    p.add_argument("--out", default="runs/bandit", help="directory for bandit.png")
    args = p.parse_args(argv)

    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    try:
        erm = dataclasses.replace(
            LabConfig.erm, num_members=args.members, hidden=tuple(int(h) for h in args.hidden.split(",") if h)
        )
        cfg = LabConfig(
            rounds=args.rounds, num_arms=args.arms, prompts_per_round=args.prompts, feature_dim=args.dim,
            utility=args.utility, utility_scale=args.scale, steps_per_round=args.steps,
            batch_size=args.batch, erm=erm,
        )
        results = run_lab(strategies, args.seeds, config=cfg)
    except ValueError as e:
        p.error(str(e))

    from rich.console import Console
    from rich.table import Table

    title = f"dueling bandit: {cfg.utility} utility, T={cfg.rounds}, P={cfg.prompts_per_round}, M={cfg.num_arms}, seeds={args.seeds}"
    path = plot(results, Path(args.out) / "bandit.png", title)
    rows = summary_rows(results)
    table = Table(title=title)
    for c in rows[0]:
        table.add_column(c)
    for r in rows:
        table.add_row(*r.values())
    console = Console()
    console.print(f"plot: {path}")
    console.print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

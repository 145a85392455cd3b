"""`duel bandit [--strategies ...] [--seeds 5] [--rounds T] [--out DIR]`: the command line of the
dueling-bandit lab (duel.tasks.bandit).

The parser is built without importing the lab, which imports JAX (seconds): `--help` and bad
arguments answer at once. An option left unset is None until the lab is imported after parsing,
then takes the lab's own default (`LabConfig`); the description and the `--utility` choices are
read from the lab's source (`lab_constants`), so the help says what the lab says.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib.util
from pathlib import Path

LAB = ("duel", "tasks", "bandit.py")  # duel.tasks.bandit; found without importing duel.tasks


def lab_constants() -> dict:
    """The lab's docstring ("doc") and literal module constants (UTILITIES, LAB_STRATEGIES),
    read from its source without running it."""
    source = Path(importlib.util.find_spec(LAB[0]).origin).parent.joinpath(*LAB[1:])
    tree = ast.parse(source.read_text())
    out = {"doc": ast.get_docstring(tree)}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:  # not a literal
                pass
    return out


def parser() -> argparse.ArgumentParser:
    lab = lab_constants()
    p = argparse.ArgumentParser(prog="duel bandit", description=lab["doc"].split("\n")[0])
    p.add_argument("--strategies", default=",".join(lab["LAB_STRATEGIES"]), help="comma-separated")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--rounds", type=int)
    p.add_argument("--arms", type=int)
    p.add_argument("--prompts", type=int, help="contexts per round")
    p.add_argument("--dim", type=int)
    p.add_argument("--utility", choices=lab["UTILITIES"])
    p.add_argument("--scale", type=float, help="utility std")
    p.add_argument("--members", type=int)
    p.add_argument("--hidden")
    p.add_argument("--steps", type=int, help="Adam steps per round")
    p.add_argument("--batch", type=int)
    p.add_argument("--out", default="runs/bandit", help="directory for bandit.png")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)

    from duel.tasks.bandit import LabConfig, plot, run_lab, summary_rows

    def given(value, default):
        return default if value is None else value

    lab = LabConfig()
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    try:
        hidden = given(args.hidden, ",".join(map(str, lab.erm.hidden)))
        erm = dataclasses.replace(
            lab.erm, num_members=given(args.members, lab.erm.num_members),
            hidden=tuple(int(h) for h in hidden.split(",") if h)
        )
        cfg = LabConfig(
            rounds=given(args.rounds, lab.rounds), num_arms=given(args.arms, lab.num_arms),
            prompts_per_round=given(args.prompts, lab.prompts_per_round),
            feature_dim=given(args.dim, lab.feature_dim), utility=given(args.utility, lab.utility),
            utility_scale=given(args.scale, lab.utility_scale),
            steps_per_round=given(args.steps, lab.steps_per_round),
            batch_size=given(args.batch, lab.batch_size), erm=erm,
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

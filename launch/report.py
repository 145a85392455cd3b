"""`duel report RUN_DIR ... [--out DIR] [--metric M] [--targets ...]`: the command line of duel.report."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import duel.report as R


def add_report_options(ap: argparse.ArgumentParser) -> None:
    """--metric and --targets, shared by `duel report` and `duel sweep`."""
    ap.add_argument("--metric", help=f"eval-row field to report (default: {R.DEFAULT_METRIC} when "
                    f"every run logs it, else {R.FALLBACK_METRIC})")
    ap.add_argument("--targets", help="target values, comma-separated; 'passive' = passive's "
                    f"final seed-mean (default: {R.DERIVED_LEVELS} levels evenly between passive's "
                    "start and final seed-means, and 'passive')")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="duel report", description=R.__doc__.splitlines()[0])
    ap.add_argument("run_dirs", nargs="+", help="run directories or sweep directories")
    ap.add_argument("--out", help="output directory (default: RUN_DIR/report for one "
                    "argument, else ./report)")
    add_report_options(ap)
    ap.add_argument("--baseline", help="the group the others are compared with, by words of its "
                    "label (e.g. 'passive mixed.gamma=0.0'; default: the passive group)")
    args = ap.parse_args(argv)
    out = args.out or (Path(args.run_dirs[0]) / "report" if len(args.run_dirs) == 1 else "report")
    try:
        R.report(args.run_dirs, out, R.parse_targets(args.targets), metric=args.metric,
                 baseline=args.baseline)
    except (FileNotFoundError, ValueError) as e:
        print(f"duel report: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {Path(out) / 'report.md'}, report.html, report.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

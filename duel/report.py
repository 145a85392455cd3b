"""Sample-efficiency report over run directories: `duel report RUN_DIR ... [--out DIR]`.

Reads RUN_DIR/config.yaml (seed, explore.strategy, budget, task) and RUN_DIR/metrics.jsonl of
each run (a RUN_DIR may also be a sweep directory holding runs), groups runs by task and
exploration strategy, and writes to the output directory:

  report.md          Markdown to paste into a paper or README (links the PNGs)
  report.html        the same tables with the plots embedded
  report.json        every number below, per strategy and per seed
  win_rate_<task>.png  win rate against oracle queries, mean and 95% band over seeds

and prints the tables to the terminal. The statistics (METHOD below is written into every
report) are computed by the small pure functions `t_interval`, `queries_to_target`, `auc`,
`curve_on_grid`, so that tests can check them against NumPy directly.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import html
import json
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy import stats

HTML_HEAD = (
    '<!doctype html><html><head><meta charset="utf-8"><title>duel report</title><style>'
    "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:"
    "collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:left}"
    "</style></head><body><h1>duel report</h1>"
)
DEFAULT_TARGETS: tuple = (0.3, 0.4, 0.5, "passive")
GRID_POINTS = 101
LEVEL = 0.95
STRATEGY_ORDER = ("passive", "ee_ts", "bai_ts", "uncertainty", "apl", "xpo", "bon_won")

METHOD = (
    "Runs are grouped by task and strategy; settings other than seed, run_dir, logging.*, "
    "checkpoint.* and resources.* that differ between a task's runs name the group too "
    "(e.g. `ee_ts mixed.gamma=0.5`). "
    "Win rate is the eval win rate against the task's reference responses; queries are oracle "
    "calls (ERM-labelled synthetic pairs are not queries and are listed separately). "
    "The point at 0 queries is the starting policy's win rate on the same eval prompts "
    "(`start_win_rate` of the eval rows) when the run did not evaluate at 0 queries. "
    "Curves: each seed's eval points are linearly interpolated onto a common grid of "
    f"{GRID_POINTS} query counts from 0 to the budget (no extrapolation: a seed counts only "
    "between its first and last eval); the band is a 95% Student-t interval over seeds "
    "(mean ± t(0.975, n-1)·s/√n), drawn where at least 2 seeds cover the point. "
    "Queries to target: per seed, the first crossing of the target, linearly interpolated "
    "between the last eval below the target and the first eval at/above it (the first eval's "
    "query count if it is already at/above); a seed that never reaches the target counts as "
    "not reached, and the mean ± 95% t-interval is over the seeds that reached it (k/n shown "
    "when k < n). Ratio = that mean / the same mean for `passive`; for the target 'passive "
    "final' (passive's mean final win rate) the denominator is passive's mean queries at its "
    "final eval. AUC: trapezoid area under a seed's eval points within [0, budget], divided "
    "by the budget (1.0 = win rate 1 throughout). Final win rate: each seed's last eval, mean "
    "± 95% t-interval over seeds."
)


# ----------------------------------------------------------------------------- statistics


def t_interval(x: Sequence[float], level: float = LEVEL) -> tuple[float, float, float]:
    """(mean, lo, hi): Student-t interval over samples; lo/hi are NaN with fewer than 2."""
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, mean - half, mean + half


def queries_to_target(queries: np.ndarray, win_rate: np.ndarray, target: float) -> float | None:
    """First crossing of `target`, interpolated between the evals around it; None: not reached."""
    above = np.nonzero(np.asarray(win_rate) >= target)[0]
    if above.size == 0:
        return None
    i = int(above[0])
    if i == 0:
        return float(queries[0])
    q0, q1, w0, w1 = queries[i - 1], queries[i], win_rate[i - 1], win_rate[i]
    return float(q0 + (target - w0) * (q1 - q0) / (w1 - w0))


def auc(queries: np.ndarray, win_rate: np.ndarray, budget: float) -> float:
    """Trapezoid area under the eval points within [0, budget], divided by the budget."""
    keep = (queries >= 0) & (queries <= budget)
    q, w = queries[keep], win_rate[keep]
    if q.size < 2:
        return math.nan
    return float(np.sum((q[1:] - q[:-1]) * (w[1:] + w[:-1]) / 2) / budget)


def curve_on_grid(runs: Sequence[Run], grid: np.ndarray) -> dict[str, np.ndarray]:
    """Mean, 95% t-band and seed count per grid point (seeds interpolated, never extrapolated)."""
    values = np.full((len(runs), grid.size), np.nan)
    for k, run in enumerate(runs):
        if run.queries.size:
            inside = (grid >= run.queries[0]) & (grid <= run.queries[-1])
            values[k, inside] = np.interp(grid[inside], run.queries, run.win_rate)
    out = {"mean": [], "lo": [], "hi": [], "n": []}
    for col in values.T:
        mean, lo, hi = t_interval(col[~np.isnan(col)])
        for key, v in zip(out, (mean, lo, hi, int((~np.isnan(col)).sum()))):
            out[key].append(v)
    return {k: np.asarray(v) for k, v in out.items()}


# ----------------------------------------------------------------------------- reading runs


@dataclasses.dataclass
class Run:
    path: Path
    task: str
    strategy: str
    seed: int
    budget: float
    queries: np.ndarray  # eval points, sorted by queries
    win_rate: np.ndarray
    win_rate_lo: np.ndarray
    win_rate_hi: np.ndarray
    oracle_queries: int  # last count seen in metrics.jsonl (train or eval lines)
    synthetic: int  # ERM-labelled pairs, no oracle call
    complete: bool
    notes: list[str]
    settings: dict = dataclasses.field(default_factory=dict)  # flattened config.yaml
    group: str = ""  # strategy, plus the settings that vary between the task's runs


# config keys that do not define an experiment (never split strategies into groups)
NOT_SETTINGS = ("seed", "run_dir", "explore.strategy", "task", "logging.", "checkpoint.",
                "resources.")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
    return out


def _get(cfg: dict, dotted: str, where: Path) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise ValueError(f"{where}: missing key '{dotted}' (expected the resolved run config "
                             "written by the loop, with seed, explore.strategy, budget, task)")
        node = node[part]
    return node


def _read_metrics(path: Path) -> tuple[list[dict], list[str]]:
    """Lines of metrics.jsonl; a torn last line (run still writing) is skipped with a note."""
    notes, rows = [], []
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == len(lines) - 1:
                notes.append("last line of metrics.jsonl is incomplete (skipped)")
            else:
                raise ValueError(f"{path}: line {i + 1} is not JSON ({e})") from None
    return rows, notes


def _last_per_step(rows: list[dict], kind: str) -> list[dict]:
    """One row per step (the last written: a resumed run may log a step again)."""
    by_step = {}
    for r in rows:
        if r.get("kind") == kind:
            by_step[r.get("step", len(by_step))] = r
    return [by_step[s] for s in sorted(by_step)]


def load_run(run_dir: str | Path) -> Run:
    run_dir = Path(run_dir)
    cfg_path, metrics_path = run_dir / "config.yaml", run_dir / "metrics.jsonl"
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{run_dir}: no config.yaml (expected a run directory)")
    cfg = yaml.safe_load(cfg_path.read_text()) or {}
    task = _get(cfg, "task", cfg_path)
    task = task.get("name", str(task)) if isinstance(task, dict) else str(task)
    rows, notes = _read_metrics(metrics_path) if metrics_path.is_file() else ([], ["no metrics"])
    evals = [r for r in _last_per_step(rows, "eval") if "queries" in r and "win_rate" in r]
    evals.sort(key=lambda r: r["queries"])
    if evals and evals[0]["queries"] > 0 and "start_win_rate" in evals[0]:
        # the policy at 0 queries is the starting policy, judged on the same eval prompts
        evals.insert(0, {"queries": 0, "win_rate": evals[0]["start_win_rate"]})
    train = _last_per_step(rows, "train")
    col = lambda key, default=math.nan: np.array([float(r.get(key, default)) for r in evals])
    oracle_queries = max([int(r.get("queries", 0)) for r in train + evals] or [0])
    synthetic = max([int(r.get("synthetic", 0)) for r in train] or [0])
    last_step = max([int(r.get("step", 0)) for r in train] or [0])
    steps = cfg.get("steps")
    budget = _get(cfg, "budget", cfg_path)
    if budget is None:  # no query limit: the run ends at `steps`; the x-axis ends at its queries
        notes.append("no budget in config.yaml: AUC normalised by the queries spent")
        budget = max(oracle_queries, 1)
    budget = float(budget)
    if budget <= 0:
        raise ValueError(f"{cfg_path}: budget must be > 0 oracle queries, got {budget:g}")
    # the loop stops at the budget or after `steps` steps (train lines count steps done), and
    # evaluates at its last step: a run is complete once that final eval is written
    ended = oracle_queries >= budget or (steps is not None and last_step >= int(steps))
    final_eval = bool(evals) and evals[-1]["queries"] >= oracle_queries
    complete = ended and final_eval
    if not ended:
        notes.append(f"incomplete: {oracle_queries} of {budget:g} queries, step {last_step}"
                     + (f" of {steps}" if steps is not None else ""))
    elif oracle_queries < budget:
        notes.append(f"stopped at steps={steps} with {oracle_queries} of {budget:g} queries")
    if evals and not final_eval:
        notes.append(f"incomplete: last eval at {evals[-1]['queries']} of {oracle_queries} queries")
    if not evals:
        notes.append("no eval yet")
    return Run(run_dir, task, str(_get(cfg, "explore.strategy", cfg_path)),
               int(_get(cfg, "seed", cfg_path)), budget, col("queries"), col("win_rate"),
               col("win_rate_lo"), col("win_rate_hi"), oracle_queries, synthetic, complete, notes,
               settings=_flatten(cfg))


def label_groups(runs: list[Run]) -> list[str]:
    """Set each run's group: its strategy, plus `key=value` for every setting that varies
    across `runs` (e.g. `ee_ts mixed.gamma=0.5`); returns the varying keys."""
    keys = sorted({k for r in runs for k in r.settings})
    varying = [k for k in keys if not k.startswith(NOT_SETTINGS)
               and len({json.dumps(r.settings.get(k), default=str) for r in runs}) > 1]
    for r in runs:
        r.group = " ".join([r.strategy] + [f"{k}={r.settings.get(k)}" for k in varying])
    return varying


def find_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run directories among `paths`; a path without config.yaml is searched for runs one level down."""
    found = []
    for p in map(Path, paths):
        if (p / "config.yaml").is_file():
            found.append(p)
            continue
        subs = sorted(d for d in p.iterdir() if (d / "config.yaml").is_file()) if p.is_dir() else []
        if not subs:
            raise FileNotFoundError(f"{p}: not a run directory (no config.yaml) and not a sweep "
                                    "directory (no sub-directory with config.yaml)")
        found.extend(subs)
    return found


# ----------------------------------------------------------------------------- summary


def _strategy_key(s: str) -> tuple:
    return (STRATEGY_ORDER.index(s) if s in STRATEGY_ORDER else len(STRATEGY_ORDER), s)


def _stat(values: Sequence[float]) -> dict:
    mean, lo, hi = t_interval(values)
    return {"mean": mean, "lo": lo, "hi": hi, "n": len(values), "per_seed": list(values)}


def summarize_task(runs: list[Run], targets: Sequence = DEFAULT_TARGETS) -> dict:
    budget = max(r.budget for r in runs)
    grid = np.linspace(0.0, budget, GRID_POINTS)
    varying = label_groups(runs)
    by_strategy: dict[str, list[Run]] = {}
    for r in sorted(runs, key=lambda r: (_strategy_key(r.strategy), r.group, r.seed)):
        by_strategy.setdefault(r.group, []).append(r)
    out: dict[str, Any] = {"budget": budget, "grid": grid.tolist(), "varying": varying,
                           "strategies": {}}
    for name, group in by_strategy.items():
        with_evals = [r for r in group if r.queries.size]
        curve = curve_on_grid(with_evals, grid)
        out["strategies"][name] = {
            "strategy": group[0].strategy,
            "seeds": [r.seed for r in group],
            "complete": sum(r.complete for r in group),
            "final": _stat([float(r.win_rate[-1]) for r in with_evals]),
            "final_queries": _stat([float(r.queries[-1]) for r in with_evals]),
            "auc": _stat([auc(r.queries, r.win_rate, r.budget) for r in with_evals]),
            "oracle_queries": _stat([r.oracle_queries for r in group]),
            "synthetic": _stat([r.synthetic for r in group]),
            "curve": {k: v.tolist() for k, v in curve.items()},
            "runs": [{"path": str(r.path), "seed": r.seed, "complete": r.complete,
                      "notes": r.notes, "oracle_queries": r.oracle_queries,
                      "synthetic": r.synthetic, "eval_queries": r.queries.tolist(),
                      "win_rate": r.win_rate.tolist(), "win_rate_lo": r.win_rate_lo.tolist(),
                      "win_rate_hi": r.win_rate_hi.tolist()} for r in group],
        }
    # the baseline: the first `passive` group (the only one unless passive runs differ)
    passive = next((v for v in out["strategies"].values() if v["strategy"] == "passive"), None)
    out["targets"] = []
    for t in targets:
        if t == "passive":
            if passive is None or math.isnan(passive["final"]["mean"]):
                continue
            value, label = passive["final"]["mean"], f"passive final ({passive['final']['mean']:.3f})"
        else:
            value, label = float(t), f"{float(t):.2f}"
        out["targets"].append({"label": label, "value": value, "passive_final": t == "passive"})
        for name, group in by_strategy.items():
            per_seed = [queries_to_target(r.queries, r.win_rate, value) for r in group]
            reached = [q for q in per_seed if q is not None]
            st = _stat(reached)
            st.update(per_seed=per_seed, reached=len(reached), seeds=len(group))
            out["strategies"][name].setdefault("targets", {})[label] = st
        base = (passive["final_queries"]["mean"] if t == "passive" else
                passive["targets"][label]["mean"]) if passive else math.nan
        for s in out["strategies"].values():
            s["targets"][label]["ratio"] = s["targets"][label]["mean"] / base if base else math.nan
    return out


def summarize(runs: list[Run], targets: Sequence = DEFAULT_TARGETS) -> dict:
    tasks: dict[str, list[Run]] = {}
    for r in runs:
        tasks.setdefault(r.task, []).append(r)
    return {"method": METHOD, "level": LEVEL,
            "tasks": {t: summarize_task(rs, targets) for t, rs in sorted(tasks.items())}}


# ----------------------------------------------------------------------------- rendering


def _f(x: float, digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _ci(st: dict, digits: int = 3) -> str:
    if math.isnan(st["mean"]):
        return "–"
    if math.isnan(st["lo"]):
        return f"{_f(st['mean'], digits)} (n={st['n']})"
    return f"{_f(st['mean'], digits)} [{_f(st['lo'], digits)}, {_f(st['hi'], digits)}]"


def _target_cell(st: dict) -> str:
    if st["reached"] == 0:
        return f"not reached (0/{st['seeds']})"
    cell = f"{st['mean']:.0f}"
    if not math.isnan(st["lo"]):
        cell += f" ± {st['hi'] - st['mean']:.0f}"
    if st["reached"] < st["seeds"]:
        cell += f" ({st['reached']}/{st['seeds']} reached)"
    if not math.isnan(st["ratio"]):
        cell += f" ×{st['ratio']:.2f}"
    return cell


def tables(task: str, s: dict) -> list[tuple[str, list[str], list[list[str]]]]:
    """(title, header, rows) for one task; shared by the Markdown, HTML and terminal output."""
    strat = s["strategies"]
    main = [[name, f"{len(v['seeds'])} ({v['complete']} complete)", _ci(v["final"]),
             _ci(v["auc"]), _f(v["oracle_queries"]["mean"], 0), _f(v["synthetic"]["mean"], 0)]
            for name, v in strat.items()]
    head = ["strategy", "seeds", "final win rate [95% CI]", "AUC / budget [95% CI]",
            "oracle queries (mean)", "synthetic labels (mean)"]
    labels = [t["label"] for t in s["targets"]]
    tgt = [[name] + [_target_cell(v["targets"][lab]) for lab in labels] for name, v in strat.items()]
    runs = [[Path(r["path"]).name, name, str(r["seed"]), "complete" if r["complete"] else "incomplete",
             str(r["oracle_queries"]), str(r["synthetic"]),
             _f(r["win_rate"][-1]) if r["win_rate"] else "–", "; ".join(r["notes"])]
            for name, v in strat.items() for r in v["runs"]]
    return [
        (f"Task `{task}`: budget {s['budget']:g} oracle queries", head, main),
        ("Oracle queries to reach a target win rate (mean ± 95% CI half-width, ×ratio to passive)",
         ["strategy"] + [f"≥ {lab}" for lab in labels], tgt),
        ("Runs", ["run", "strategy", "seed", "status", "oracle queries", "synthetic labels",
                  "final win rate", "notes"], runs),
    ]


def plot_task(task: str, s: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = np.asarray(s["grid"])
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for name, v in s["strategies"].items():
        c = {k: np.asarray(x, dtype=float) for k, x in v["curve"].items()}
        line, = ax.plot(grid, c["mean"], label=f"{name} (n={len(v['seeds'])})")
        ax.fill_between(grid, c["lo"], c["hi"], color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("oracle queries")
    ax.set_ylabel("win rate vs reference")
    ax.set_title(f"{task}: mean and 95% t-band over seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    esc = lambda c: str(c).replace("|", "\\|")
    lines = ["| " + " | ".join(map(esc, head)) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(map(esc, r)) + " |" for r in rows])


def _html_table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                  for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"


def _jsonable(x: Any) -> Any:
    if isinstance(x, float):
        return None if math.isnan(x) or math.isinf(x) else x
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def report(run_dirs: Sequence[str | Path], out_dir: str | Path,
           targets: Sequence = DEFAULT_TARGETS, console: Any = None) -> dict:
    """Write report.md/.html/.json and PNGs for `run_dirs` (runs or sweep dirs); return the summary."""
    runs = [load_run(p) for p in find_runs(run_dirs)]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(runs, targets)
    md = ["# duel report", ""]
    body = [HTML_HEAD]
    for task, s in summary["tasks"].items():
        png = out / ("win_rate_" + re.sub(r"[^\w.-]", "_", task) + ".png")
        plot_task(task, s, png)
        s["plot"] = png.name
        img = base64.b64encode(png.read_bytes()).decode()
        for i, (title, head, rows) in enumerate(tables(task, s)):
            md += [f"## {title}" if i == 0 else f"### {title}", ""]
            h = 2 if i == 0 else 3
            body.append(f"<h{h}>{html.escape(title.replace('`', ''))}</h{h}>")
            if i == 0:
                md += [f"![win rate vs oracle queries, {task}]({png.name})", ""]
                body.append(f'<img alt="win rate vs queries" src="data:image/png;base64,{img}">')
            md += [_md_table(head, rows), ""]
            body.append(_html_table(head, rows))
    md += ["## Method", "", METHOD, ""]
    body.append(f"<h2>Method</h2><p>{html.escape(METHOD)}</p></body></html>")
    (out / "report.md").write_text("\n".join(md))
    (out / "report.html").write_text("\n".join(body))
    (out / "report.json").write_text(json.dumps(_jsonable(summary), indent=1))
    _print(summary, console)
    return summary


def _print(summary: dict, console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    for task, s in summary["tasks"].items():
        for title, head, rows in tables(task, s)[:2]:
            table = Table(title=title)
            for h in head:
                table.add_column(h)
            for r in rows:
                table.add_row(*r)
            console.print(table)


def parse_targets(text: str) -> list:
    out = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        if item == "passive":
            out.append(item)
            continue
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"--targets: '{item}' is not a win rate in [0, 1] or 'passive'") from None
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"--targets: {value} is not a win rate in [0, 1]")
        out.append(value)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="duel report", description=__doc__.splitlines()[0])
    ap.add_argument("run_dirs", nargs="+", help="run directories or sweep directories")
    ap.add_argument("--out", help="output directory (default: RUN_DIR/report for one "
                    "argument, else ./report)")
    ap.add_argument("--targets", default="0.3,0.4,0.5,passive",
                    help="target win rates, comma-separated; 'passive' = passive's final")
    args = ap.parse_args(argv)
    out = args.out or (Path(args.run_dirs[0]) / "report" if len(args.run_dirs) == 1 else "report")
    try:
        report(args.run_dirs, out, parse_targets(args.targets))
    except (FileNotFoundError, ValueError) as e:
        print(f"duel report: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {Path(out) / 'report.md'}, report.html, report.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

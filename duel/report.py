"""Sample-efficiency report over run directories, each strategy against passive.

`duel report RUN_DIR ... [--out DIR] [--metric NAME] [--targets T,...]`

Reads RUN_DIR/config.yaml (seed, explore.strategy, budget, task) and RUN_DIR/metrics.jsonl of
each run (a RUN_DIR may also be a sweep directory holding runs), groups runs by task and
exploration strategy, and writes to the output directory:

  report.md             Markdown to paste into a paper or README (links the PNGs)
  report.html           the same tables with the plots embedded
  report.json           every number below, per strategy and per seed (infinity as "inf")
  <metric>_<task>.png   the metric against oracle queries: seed means with their 95% band, and
                        one small panel per strategy with its seeds and passive's mean

and prints the tables to the terminal. The metric is an eval-row field (default:
`expected_win_rate` when every run logs it, else `win_rate`). Everything is compared with the
`passive` strategy: queries to reach a target and their ratio to passive's, same-seed
differences in AUC and final value, and the acceptance checks of issue 14. The statistics are
the pure functions of `duel.report_stats` (METHOD below is written into every report); this
module reads the runs and summarises them, `duel.report_render` writes the files.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from duel import report_render as render
from duel import report_stats as st

GRID_POINTS = 101
LEVEL = st.LEVEL
DEFAULT_METRIC, FALLBACK_METRIC = "expected_win_rate", "win_rate"
DERIVED_LEVELS = 3
COLLAPSE_AFTER = 0.2  # the collapse check starts after this share of the budget
ONE_THIRD = 1 / 3
STRATEGY_ORDER = ("passive", "ee_ts", "bai_ts", "uncertainty", "apl", "xpo", "bon_won")

METHOD = (
    "Runs are grouped by task and strategy; settings other than seed, run_dir, logging.*, "
    "checkpoint.* and resources.* that differ between a task's runs name the group too "
    "(e.g. `ee_ts mixed.gamma=0.5`). "
    "The metric is one field of the eval rows (win rate or expected win rate against the "
    "task's reference responses); queries are oracle calls (ERM-labelled synthetic pairs are "
    "not queries and are listed separately). The point at 0 queries is the starting policy's "
    "value on the same eval prompts (`start_<metric>` of the eval rows) when the run did not "
    "evaluate at 0 queries. "
    "Band: each seed's eval points are linearly interpolated onto a common grid of "
    f"{GRID_POINTS} query counts from 0 to the budget (no extrapolation: a seed counts only "
    "between its first and last eval); the band is a 95% Student-t interval over seeds "
    "(mean ± t(0.975, n-1)·s/√n), drawn where at least 2 seeds cover the point. "
    "Seed-mean curve: the mean over seeds of their interpolated evals, at every query count "
    "where some seed evaluated. "
    "Queries to target: the first crossing of the target on the seed-mean curve, linearly "
    "interpolated between the points around it (the first point's queries if it is already "
    "at/above); 'not reached' when it never gets there. Ratio = that / passive's queries for "
    "the same target on passive's seed-mean curve (so passive is ×1.00; where only passive "
    "misses the target the table says so and report.json has ratio 0). Its 95% interval is a "
    f"percentile bootstrap over seeds ({st.RESAMPLES} resamples with replacement, RNG seed "
    f"{st.BOOT_SEED}; the interval runs from the k-th smallest to the k-th largest resampled "
    f"ratio, k = round(resamples·0.025) = {round(st.RESAMPLES * 0.025)}; not reached = ∞, "
    "resamples where neither reaches are left out): a strategy that ran "
    "the same seeds as passive is resampled jointly with it (same seed indices: paired), "
    "otherwise independently; for the target 'passive final' the target is recomputed as the "
    "resampled passive seeds' final mean, other targets stay fixed. Per seed: the same "
    "crossing on each seed's own evals; k/n = seeds that reach it. "
    "Default targets: 'passive final' (passive's final seed-mean) and "
    f"{DERIVED_LEVELS} levels evenly between passive's starting seed-mean (the first eval "
    "point) and passive's final seed-mean (1/4, 1/2, 3/4 of the way; without passive runs, from "
    "all runs' start to the best final seed-mean). "
    "AUC: trapezoid area under a seed's eval points within [0, budget], divided by the budget. "
    "Final: each seed's last eval; mean ± 95% t-interval over seeds. Same-seed differences "
    "from passive (AUC, final): per seed strategy − passive over the seeds both ran; the table "
    "shows the mean and its 95% t-interval, report.json also a percentile bootstrap interval "
    "of the mean (boot_lo/boot_hi). "
    "Acceptance checks (issue 14), each strategy vs passive: (a) queries to reach passive's "
    "final seed-mean on the strategy's seed-mean curve, and their ratio to passive's queries "
    "for that target: met when ≤ 1/3; (b) the strategy's final 95% t-interval lies above "
    "passive's final mean (its lower end is greater); (c) no collapse: after the first fifth "
    "of the budget (consecutive evals both at ≥ budget/5 queries) no seed's eval drops by more "
    "than that eval's interval half-width ((`<metric>_hi` − `<metric>_lo`)/2 of the later "
    "eval; not checked where the eval rows carry no interval)."
)


# ----------------------------------------------------------------------------- reading runs


@dataclasses.dataclass
class Series:
    """One run's eval points for one metric, sorted by queries."""

    queries: np.ndarray
    values: np.ndarray
    lo: np.ndarray  # the eval's own interval (NaN where not logged)
    hi: np.ndarray


@dataclasses.dataclass
class Run:
    path: Path
    task: str
    strategy: str
    seed: int
    budget: float
    evals: list[dict]  # eval rows with `queries`, one per step, sorted by queries
    oracle_queries: int  # last count seen in metrics.jsonl (train or eval lines)
    synthetic: int  # ERM-labelled pairs, no oracle call
    complete: bool
    notes: list[str]
    settings: dict = dataclasses.field(default_factory=dict)  # flattened config.yaml
    group: str = ""  # strategy, plus the settings that vary between the task's runs

    def has(self, metric: str) -> bool:
        """Every eval row carries `metric`."""
        return bool(self.evals) and all(_num(r.get(metric)) is not None for r in self.evals)

    def series(self, metric: str) -> Series:
        """The eval rows with `metric`; the starting policy at 0 queries from `start_<metric>`
        when the first eval is later."""
        rows = [r for r in self.evals if _num(r.get(metric)) is not None]
        points = [(float(r["queries"]), _num(r[metric]), _num(r.get(f"{metric}_lo")),
                   _num(r.get(f"{metric}_hi"))) for r in rows]
        start = _num(rows[0].get(f"start_{metric}")) if rows else None
        if rows and points[0][0] > 0 and start is not None:
            points.insert(0, (0.0, start, None, None))
        cols = [np.array([math.nan if x is None else x for x in c], dtype=float)
                for c in zip(*points)] if points else [np.zeros(0)] * 4
        return Series(*cols)


def _num(x: Any) -> float | None:
    """A finite float, or None (missing, null, NaN)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return None
    return float(x)


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
    task = task.get("name", str(task)) if isinstance(task, dict) else task
    if task is None:  # a run of data alone: named by its training data
        train = (cfg.get("data") or {}).get("train")
        task = f"data:{Path(str(train)).name}" if train else "None"
    task = str(task)
    rows, notes = _read_metrics(metrics_path) if metrics_path.is_file() else ([], ["no metrics"])
    evals = sorted((r for r in _last_per_step(rows, "eval") if "queries" in r),
                   key=lambda r: r["queries"])
    train = _last_per_step(rows, "train")
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
               int(_get(cfg, "seed", cfg_path)), budget, evals, oracle_queries, synthetic,
               complete, notes, settings=_flatten(cfg))


def choose_metric(runs: Sequence[Run], metric: str | None = None) -> tuple[str, str]:
    """(metric, why): `metric` when given (some run must log it), else `expected_win_rate` when
    every run with evals logs it in every eval row, else `win_rate`."""
    with_evals = [r for r in runs if r.evals]
    if metric:
        if with_evals and not any(r.series(metric).queries.size for r in with_evals):
            have = sorted({k for r in with_evals for k in r.evals[-1]
                           if _num(r.evals[-1][k]) is not None})
            raise ValueError(f"--metric {metric}: no eval row carries it (fields: {', '.join(have)})")
        return metric, "given by --metric"
    if with_evals and all(r.has(DEFAULT_METRIC) for r in with_evals):
        return DEFAULT_METRIC, f"default: every run logs {DEFAULT_METRIC}"
    return FALLBACK_METRIC, f"default: not every run logs {DEFAULT_METRIC}"


def _config_defaults() -> dict:
    """The flattened defaults of today's run config (duel.config.Config)."""
    from duel.config import Config, to_dict

    return _flatten(to_dict(Config()))


def label_groups(runs: list[Run]) -> list[str]:
    """Set each run's group: its strategy, plus `key=value` for every setting that varies
    across `runs` (e.g. `ee_ts mixed.gamma=0.5`); returns the varying keys. A run whose
    config.yaml lacks a key was made before the key existed: it ran as the key's default does
    (a key is added with a default that keeps the old behaviour), so it counts with that
    default. A key the config no longer knows, held by only some runs with one value, does not
    vary either."""
    defaults = _config_defaults()

    def value(r: Run, k: str):
        return r.settings[k] if k in r.settings else defaults.get(k)

    keys = sorted({k for r in runs for k in r.settings})
    varying = []
    for k in keys:
        if k.startswith(NOT_SETTINGS):
            continue
        held = [r for r in runs if k in r.settings or k in defaults]
        if len({json.dumps(value(r, k), default=str) for r in held}) > 1:
            varying.append(k)
    for r in runs:
        r.group = " ".join([r.strategy] + [f"{k}={value(r, k)}" for k in varying])
    return varying


def find_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run directories among `paths`; a path without config.yaml is searched for runs one level down.
    A run directory reached twice (a sweep and one of its runs, a glob that repeats) counts once."""
    found: list[Path] = []
    for p in map(Path, paths):
        if (p / "config.yaml").is_file():
            found.append(p)
            continue
        subs = sorted(d for d in p.iterdir() if (d / "config.yaml").is_file()) if p.is_dir() else []
        if not subs:
            raise FileNotFoundError(f"{p}: not a run directory (no config.yaml) and not a sweep "
                                    "directory (no sub-directory with config.yaml)")
        found.extend(subs)
    unique: dict[Path, Path] = {}  # resolved -> as given, first occurrence, in order
    for p in found:
        unique.setdefault(p.resolve(), p)
    return list(unique.values())


# ----------------------------------------------------------------------------- summary


def _strategy_key(s: str) -> tuple:
    return (STRATEGY_ORDER.index(s) if s in STRATEGY_ORDER else len(STRATEGY_ORDER), s)


def _stat(values: Sequence[float]) -> dict:
    mean, lo, hi = st.t_interval(values)
    return {"mean": mean, "lo": lo, "hi": hi, "n": len(values), "per_seed": list(values)}


def _target_label(value: float, kind: str) -> str:
    if kind == "passive":
        return f"passive final ({value:.3f})"
    return f"{value:.3f}" if kind == "derived" or round(value, 2) != value else f"{value:.2f}"


def resolve_targets(targets: Sequence | None, groups: dict[str, dict],
                    passive_name: str | None) -> tuple[list[dict], dict]:
    """[{"label", "value", "kind": given|derived|passive}] and how the default was derived.
    `targets` None: DERIVED_LEVELS levels between the start and final seed-means of the group
    `passive_name` (the baseline, with evals), plus 'passive'; without a baseline, 'passive' is
    left out and the levels run from all groups' start to the best final seed-mean."""
    passive = groups[passive_name] if passive_name else None
    has_passive = passive is not None
    derived: dict = {}
    if targets is None:
        base = [passive] if has_passive else list(groups.values())
        starts = [x for g in base for x in g["start"]["per_seed"]]
        ends = [g["final"]["mean"] for g in base if not math.isnan(g["final"]["mean"])]
        if starts and ends:
            start = float(np.mean(starts))
            end = passive["final"]["mean"] if has_passive else max(ends)
            derived = {"start": start, "end": end, "levels": DERIVED_LEVELS,
                       "from": "passive" if has_passive else "all groups (no passive)"}
            targets = [*st.derived_targets(start, end, DERIVED_LEVELS), "passive"]
        else:
            targets = ["passive"]
    out = []
    for t in targets:
        if t == "passive":
            if has_passive:
                v = passive["final"]["mean"]
                out.append({"label": _target_label(v, "passive"), "value": v, "kind": "passive"})
        else:
            kind = "derived" if derived else "given"
            out.append({"label": _target_label(float(t), kind), "value": float(t), "kind": kind})
    labels = [t["label"] for t in out]  # a flat passive derives one level three times
    return [t for i, t in enumerate(out) if t["label"] not in labels[:i]], derived


def _curves(g: list[tuple[Run, Series]]) -> list[st.Curve]:
    return [(s.queries, s.values) for _, s in g]


def _group_summary(group: list[tuple[Run, Series]], grid: np.ndarray) -> dict:
    with_evals = [(r, s) for r, s in group if s.queries.size]
    curves = _curves(with_evals)
    mq, mv = st.seed_mean_curve(curves)
    return {
        "strategy": group[0][0].strategy,
        "seeds": [r.seed for r, _ in group],
        "eval_seeds": [r.seed for r, _ in with_evals],
        "complete": sum(r.complete for r, _ in group),
        "start": _stat([float(s.values[0]) for _, s in with_evals]),
        "start_queries": _stat([float(s.queries[0]) for _, s in with_evals]),
        "final": _stat([float(s.values[-1]) for _, s in with_evals]),
        "final_queries": _stat([float(s.queries[-1]) for _, s in with_evals]),
        "auc": _stat([st.auc(s.queries, s.values, r.budget) for r, s in with_evals]),
        "oracle_queries": _stat([r.oracle_queries for r, _ in group]),
        "synthetic": _stat([r.synthetic for r, _ in group]),
        "curve": {k: v.tolist() for k, v in st.band(st.on_grid(curves, grid)).items()},
        "mean_curve": {"queries": mq.tolist(), "mean": mv.tolist()},
        "runs": [{"path": str(r.path), "seed": r.seed, "complete": r.complete,
                  "notes": r.notes, "oracle_queries": r.oracle_queries,
                  "synthetic": r.synthetic, "eval_queries": s.queries.tolist(),
                  "values": s.values.tolist(), "lo": s.lo.tolist(), "hi": s.hi.tolist()}
                 for r, s in group],
    }


def _collapse_check(group: list[tuple[Run, Series]], budget: float, metric: str) -> dict:
    drops, checked, pairs = [], 0, 0
    after = COLLAPSE_AFTER * budget
    for r, s in group:
        found, n = st.collapses(s.queries, s.values, s.lo, s.hi, after)
        drops += [{"seed": r.seed, **d} for d in found]
        checked += n
        pairs += int(np.sum(s.queries[:-1] >= after)) if s.queries.size else 0
    note = ""
    if checked < pairs:
        note = (f"{pairs - checked} of {pairs} eval pairs not checked: no "
                f"{metric}_lo/{metric}_hi in those eval rows")
    return {"no_collapse": (not drops) if checked else None, "drops": drops,
            "pairs_checked": checked, "pairs": pairs, "after_queries": after, "note": note}


def _queries_to(g: list[tuple[Run, Series]], curve: dict, passive: list[tuple[Run, Series]],
                passive_curve: dict | None, value: float, passive_final: bool) -> dict:
    """Queries to reach `value`: per seed (mean ± t over the seeds that reach it), on the
    seed-mean curve, and the ratio to passive's on its seed-mean curve with its bootstrap
    interval (`passive_final`: the target is passive's final seed-mean, recomputed per resample)."""
    per_seed = [st.queries_to_target(s.queries, s.values, value) for _, s in g]
    reached = [q for q in per_seed if q is not None]
    e = _stat(reached)
    e.update(per_seed=per_seed, reached=len(reached), seeds=len(g),
             mean_curve=st.queries_to_target(curve["queries"], curve["mean"], value),
             ratio=math.nan, ratio_lo=math.nan, ratio_hi=math.nan, bootstrap=None)
    if passive_curve is None or not g:
        return e
    e["ratio"] = st.ratio(e["mean_curve"], st.queries_to_target(
        passive_curve["queries"], passive_curve["mean"], value))
    paired = [r.seed for r, _ in g] == [r.seed for r, _ in passive]
    boot = st.bootstrap_ratio(_curves(g), _curves(passive), None if passive_final else value, paired)
    e.update(ratio_lo=boot.pop("lo"), ratio_hi=boot.pop("hi"), bootstrap=boot)
    return e


def pick_baseline(names: Sequence[str], strategies: dict[str, str], baseline: str | None) -> str | None:
    """The group the others are compared with. None: the first `passive` group (the only one
    unless passive runs differ in a setting). Else the one group whose label holds every
    whitespace-separated word of `baseline` (e.g. 'passive mixed.gamma=0.0')."""
    if baseline is None:
        return next((n for n in names if strategies[n] == "passive"), None)
    words = baseline.split()
    hits = [n for n in names if set(words) <= set(n.split())]
    if len(hits) != 1:
        raise ValueError(f"--baseline {baseline!r}: matches {len(hits)} groups "
                         f"({', '.join(hits) if hits else 'none'}); groups: {', '.join(names)}")
    return hits[0]


def summarize_task(runs: list[Run], metric: str, targets: Sequence | None = None,
                   baseline: str | None = None) -> dict:
    budget = max(r.budget for r in runs)
    grid = np.linspace(0.0, budget, GRID_POINTS)
    varying = label_groups(runs)
    groups: dict[str, list[tuple[Run, Series]]] = {}
    for r in sorted(runs, key=lambda r: (_strategy_key(r.strategy), r.group, r.seed)):
        g = groups.setdefault(r.group, [])
        twin = next((o for o, _ in g if o.seed == r.seed), None)
        if twin is not None:  # one seed counted twice would narrow every interval
            raise ValueError(f"{twin.path} and {r.path}: two runs of group '{r.group}' with seed "
                             f"{r.seed} (task {r.task}); give each seed of a group once")
        g.append((r, r.series(metric)))
    out: dict[str, Any] = {"budget": budget, "grid": grid.tolist(), "varying": varying,
                           "strategies": {n: _group_summary(g, grid) for n, g in groups.items()}}
    strat = out["strategies"]
    evaluated = {n: [(r, s) for r, s in g if s.queries.size] for n, g in groups.items()}
    # the baseline: the first `passive` group with evals, or the one `baseline` names
    p_name = pick_baseline([n for n in strat if evaluated[n]],
                           {n: v["strategy"] for n, v in strat.items()}, baseline)
    out["passive"] = p_name
    p_runs = evaluated[p_name] if p_name else []
    p_curve = strat[p_name]["mean_curve"] if p_name else None
    out["targets"], out["derived_targets"] = resolve_targets(targets, strat, p_name)
    for name, g in evaluated.items():
        v = strat[name]
        v["targets"] = {t["label"]: _queries_to(g, v["mean_curve"], p_runs, p_curve, t["value"],
                                                t["kind"] == "passive") for t in out["targets"]}
        v["no_collapse"] = _collapse_check(g, budget, metric)
        if p_name is None or name == p_name:
            continue
        v["vs_passive"] = _paired(g, p_runs)
        pf = strat[p_name]["final"]["mean"]
        reach = next((v["targets"][t["label"]] for t in out["targets"] if t["kind"] == "passive"),
                     None) or _queries_to(g, v["mean_curve"], p_runs, p_curve, pf, True)
        v["acceptance"] = _acceptance(v, reach, pf, p_curve)
    return out


def _paired(group: list[tuple[Run, Series]], passive: list[tuple[Run, Series]]) -> dict:
    """Same-seed differences from passive in AUC and final value."""
    mine = {r.seed: (r, s) for r, s in group}
    base = {r.seed: (r, s) for r, s in passive}
    seeds = sorted(set(mine) & set(base))
    out: dict[str, Any] = {"seeds": seeds}
    for key, f in (("auc", lambda r, s: st.auc(s.queries, s.values, r.budget)),
                   ("final", lambda r, s: float(s.values[-1]))):
        out[key] = st.paired_difference([f(*mine[k]) for k in seeds], [f(*base[k]) for k in seeds])
    return out


def _acceptance(v: dict, reach: dict, passive_final: float, passive_curve: dict) -> dict:
    """Issue 14's checks (a) and (b) for one strategy; `reach`: its queries to passive's final."""
    lo = v["final"]["lo"]
    return {
        "target": passive_final,
        "queries": reach["mean_curve"],
        "passive_queries": st.queries_to_target(passive_curve["queries"], passive_curve["mean"],
                                                passive_final),
        "ratio": reach["ratio"], "ratio_lo": reach["ratio_lo"], "ratio_hi": reach["ratio_hi"],
        "one_third": None if math.isnan(reach["ratio"]) else bool(reach["ratio"] <= ONE_THIRD),
        "final_lo": lo, "passive_final": passive_final,
        "final_above_passive": None if math.isnan(lo) else bool(lo > passive_final),
    }


def summarize(runs: list[Run], targets: Sequence | None = None, metric: str | None = None,
              baseline: str | None = None) -> dict:
    metric, why = choose_metric(runs, metric)
    tasks: dict[str, list[Run]] = {}
    for r in runs:
        tasks.setdefault(r.task, []).append(r)
    return {"metric": metric, "metric_reason": why, "method": METHOD, "level": LEVEL,
            "bootstrap": {"resamples": st.RESAMPLES, "seed": st.BOOT_SEED},
            "tasks": {t: summarize_task(rs, metric, targets, baseline) for t, rs in sorted(tasks.items())}}


def report(run_dirs: Sequence[str | Path], out_dir: str | Path, targets: Sequence | None = None,
           console: Any = None, metric: str | None = None, baseline: str | None = None) -> dict:
    """Write report.md/.html/.json and PNGs for `run_dirs` (runs or sweep dirs); return the
    summary. `targets` None: derived from the runs; `metric` None: the default (choose_metric);
    `baseline` None: the passive group (pick_baseline)."""
    runs = [load_run(p) for p in find_runs(run_dirs)]
    summary = summarize(runs, targets, metric, baseline)
    render.write(summary, Path(out_dir))
    render.show(summary, console)
    return summary


def parse_targets(text: str | None) -> list | None:
    """'0.3,0.5,passive' -> [0.3, 0.5, 'passive']; None or '' -> None (derived from the runs)."""
    if not text:
        return None
    out = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        if item == "passive":
            out.append(item)
            continue
        try:
            value = float(item)
        except ValueError:
            raise ValueError(f"--targets: '{item}' is not a value in [0, 1] or 'passive'") from None
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"--targets: {value} is not a value in [0, 1]")
        out.append(value)
    return out

"""`duel sweep CONFIG --strategies passive,ee_ts --seeds 5 --budget Q`: the strategy × seed grid.

Each cell is a normal, resumable run directory SWEEP_DIR/<strategy>-s<seed> whose config is
CONFIG with `--set` overrides, then `explore.strategy`, `seed`, `budget` and `run_dir` set by
the sweep. Runs go to Ray as tasks, at most --parallel at a time (by default as many as the
cluster's CPUs/GPUs hold given `resources.*`), on the cluster at --address or on an embedded
local Ray; each task drives one run, whose actors take the configured CPUs/GPUs. The task's
starting policy is built once, before the fan-out, so that every run reads the cached copy
(on a multi-node cluster SWEEP_DIR and $DUEL_CACHE must be on storage every node sees).
Complete runs are skipped, partial ones resumed (the run function resumes from the run
directory). Then `duel report` runs over the grid: SWEEP_DIR/report/.

The run function is injectable (`main(argv, run_fn=...)`) so that tests can use a fake one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from duel import config as C
from duel import report as R
from launch.presets import load_config
from launch.report import add_report_options

DEFAULT_STRATEGIES = "passive,ee_ts,bai_ts,uncertainty,apl,xpo"
STOPPED = "stopped: "  # a run that checkpointed and stopped (exit 3 of `duel run`), not a failure


class SweepError(ValueError):
    """Bad sweep input: arguments, or a run directory that does not fit the sweep."""


@dataclasses.dataclass
class RunSpec:
    strategy: str
    seed: int
    run_dir: Path
    config: Any  # duel.config.Config


def default_run(config, run_dir: str) -> Any:
    """The real per-run entry point (imported in the Ray worker, not in the driver)."""
    from learner.loop import run_experiment

    return run_experiment(config, run_dir)


def default_prepare(config) -> str:
    """The run's policy directory: policy.path, or the task's starting policy, built and cached
    (under $DUEL_CACHE) by the same code the loop uses, so the runs find it ready. Built in a
    spawned child, as the driver builds it: the child drops the caller's XLA_FLAGS, so the cached
    policy does not depend on whether a sweep or a run built it first (trained in this Ray task,
    under XLA_FLAGS=--xla_backend_optimization_level=0, `reverse`'s differed: round 23)."""
    from learner.setup import model_dir_for

    return model_dir_for(config)


# ----------------------------------------------------------------------------- planning


def parse_seeds(text: str) -> list[int]:
    """'5' -> seeds 0..4 (a count); '0,3,7' -> exactly those; '100-103' -> 100..103; '100,' ->
    seed 100 alone."""
    try:
        if "," in text:
            return sorted({int(s) for s in text.split(",") if s.strip()})
        lo, sep, hi = text.strip().partition("-")
        if sep and lo:
            if int(hi) < int(lo):
                raise ValueError
            return list(range(int(lo), int(hi) + 1))
        if int(text) < 0:
            raise ValueError
        return list(range(int(text)))
    except ValueError:
        raise SweepError(f"--seeds: expected a count (5), a list (0,3,7) or a range (100-103), "
                         f"got {text!r}") from None


def describe_seeds(text: str, seeds: list[int]) -> str:
    """The sweep's seeds in words; a count says it is one (`--seeds 100` is 100 runs, not seed 100)."""
    names = ", ".join(map(str, seeds)) if len(seeds) <= 6 else f"{seeds[0]}..{seeds[-1]}"
    if not text.strip().isdigit():  # a list or a range names its seeds itself
        return f"seeds {names}"
    return f"seeds {names} (--seeds {text.strip()} is a count; seed {text.strip()} alone: --seeds {text.strip()},)"


def parse_set_for(items: Sequence[str], strategies: Sequence[str]) -> dict[str, list[str]]:
    """['ee_ts:mixed.gamma=0.75', ...] -> {'ee_ts': ['mixed.gamma=0.75'], ...}: overrides that
    apply to one strategy's runs only (a method's own settings, e.g. SEA's mixed preference
    learning for ee_ts, while passive stays plain online DPO)."""
    out: dict[str, list[str]] = {}
    for item in items:
        strategy, sep, kv = item.partition(":")
        if not sep or "=" not in kv:
            raise SweepError(f"--set-for: expected STRATEGY:KEY=VALUE, got {item!r}")
        if strategy not in strategies:
            raise SweepError(f"--set-for {item!r}: {strategy!r} is not one of this sweep's "
                             f"strategies ({', '.join(strategies)})")
        out.setdefault(strategy, []).append(kv)
    return out


def plan(config_name: str, strategies: Sequence[str], seeds: Sequence[int], budget: int | None,
         sets: Sequence[str], sweep_dir: Path,
         set_for: dict[str, list[str]] | None = None) -> list[RunSpec]:
    """One RunSpec per (strategy, seed); configs validated here, before anything runs.
    `set_for`: per-strategy overrides, applied after `sets`."""
    specs = []
    for strategy in strategies:
        for seed in seeds:
            run_dir = (sweep_dir / f"{strategy}-s{seed}").resolve()
            extra = [f"explore.strategy={strategy}", f"seed={seed}", f"run_dir={run_dir}"]
            if budget is not None:
                extra.append(f"budget={budget}")
            cfg = load_config(config_name, [*sets, *(set_for or {}).get(strategy, []), *extra])
            if cfg.budget is None:
                raise SweepError(f"{config_name}: no budget; a sweep compares strategies at a "
                                 "fixed number of oracle queries: pass --budget Q")
            specs.append(RunSpec(strategy, seed, run_dir, cfg))
    return specs


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [k for key in sorted(set(a) | set(b))
                for k in _diff(a.get(key), b.get(key), f"{prefix}{key}.")]
    return [] if a == b else [prefix[:-1]]


def status(spec: RunSpec) -> str:
    """'new', 'partial' or 'complete'; a run directory made with other settings is an error."""
    cfg_path = spec.run_dir / "config.yaml"
    if not cfg_path.is_file():
        return "new"
    old = C.to_dict(C.load_config(cfg_path))
    keys = _diff(old, C.to_dict(spec.config))
    if keys:
        raise SweepError(f"{cfg_path}: this run was made with other settings ({', '.join(keys)} "
                         "differ from this sweep's); use the same CONFIG/--set/--budget to "
                         "resume it, or another --out")
    return "complete" if R.load_run(spec.run_dir).complete else "partial"


# ----------------------------------------------------------------------------- execution


def _call(fn: Callable, *args) -> Any:
    return fn(*args)


def per_run_resources(config) -> tuple[float, float]:
    """(CPUs, GPUs) one run keeps busy: its actors' GPUs; a CPU per role computing on CPU."""
    r = config.resources
    gpus = r.learner_gpus + r.generators * r.generator_gpus
    cpus = 1 + (r.learner_gpus == 0) + r.generators * (r.generator_gpus == 0)
    return float(cpus), float(gpus)


def default_parallel(cluster: dict, config) -> int:
    """How many runs the cluster holds at once (`cluster` as from ray.cluster_resources())."""
    cpus, gpus = per_run_resources(config)
    n = int(cluster.get("CPU", 1) // cpus)
    if gpus > 0:
        n = min(n, int(cluster.get("GPU", 0) // gpus))
        if n < 1 and cluster.get("GPU", 0) < gpus:
            raise SweepError(f"one run needs {gpus:g} GPUs (resources.learner_gpus + generators "
                             f"× generator_gpus); the cluster has {cluster.get('GPU', 0):g}")
    return max(1, n)


def execute(specs: list[RunSpec], run_fn: Callable, prepare_fn: Callable | None,
            address: str | None, parallel: int | None, log=print) -> dict[str, str]:
    """Run `specs` as Ray tasks; returns {run_dir: error message} for the runs that failed."""
    import ray

    started = not ray.is_initialized()
    if started:  # as learner.loop.init_ray: a zero-GPU task keeps CUDA_VISIBLE_DEVICES
        os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
        # and every run's tasks and actors share one persistent compile cache (set before Ray
        # starts: a local Ray's workers inherit it; run_experiment inside a task sees Ray
        # already started and cannot set it any more)
        from learner.loop import quiet_ray_start
        from learner.setup import enable_compile_cache

        enable_compile_cache()
        with quiet_ray_start():
            ray.init(address=address, include_dashboard=False, configure_logging=False)
            if not address:
                from learner import ray_reaper

                ray_reaper.start()  # a local Ray's agents end with this process, even SIGKILLed
    try:
        parallel = parallel or default_parallel(ray.cluster_resources(), specs[0].config)
        log(f"{len(specs)} runs, {parallel} at a time")
        # A task drives one run (learner.loop); the run's actors hold its CPUs/GPUs through
        # their own placement group, so the driving task itself reserves nothing.
        task = ray.remote(_call).options(num_cpus=0, num_gpus=0, max_retries=0)
        if prepare_fn is not None:
            path = ray.get(task.remote(prepare_fn, specs[0].config))
            log(f"starting policy ready{f': {path}' if path else ''}")
        queue, pending, errors = list(specs), {}, {}
        while queue or pending:
            while queue and len(pending) < parallel:
                s = queue.pop(0)
                pending[task.remote(run_fn, s.config, str(s.run_dir))] = s
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                s = pending.pop(ref)
                try:
                    ray.get(ref)
                    log(f"done   {s.run_dir.name}")
                except Exception as e:  # noqa: BLE001 -- one failed run must not stop the grid
                    cause = getattr(e, "cause", None)  # Ray's RayTaskError: the run's own error
                    cause = cause if isinstance(cause, Exception) else e
                    if type(cause).__name__ == "RunStopped" and getattr(cause, "resumable", True):
                        # checkpointed: the next sweep resumes it
                        errors[str(s.run_dir)] = f"{STOPPED}{cause}; run the sweep again to resume it"
                        log(f"STOPPED {s.run_dir.name}: {cause}")
                        continue
                    errors[str(s.run_dir)] = f"{type(cause).__name__}: {cause}"
                    log(f"FAILED {s.run_dir.name}: {errors[str(s.run_dir)].splitlines()[0]}")
        return errors
    finally:
        if started:
            ray.shutdown()


# ----------------------------------------------------------------------------- CLI


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="duel sweep", description=__doc__.splitlines()[0])
    ap.add_argument("config", help="preset name or YAML path")
    ap.add_argument("--strategies", default=DEFAULT_STRATEGIES, help="comma-separated")
    ap.add_argument("--seeds", default="5", help="a count N (seeds 0..N-1), a list 0,3,7, a range 100-103, "
                    "or one seed with a comma: 100,")
    ap.add_argument("--budget", type=int, help="oracle queries per run (default: the config's)")
    ap.add_argument("--set", dest="sets", action="append", default=[],
                    metavar="KEY=VALUE", help="config overrides for every run")
    ap.add_argument("--set-for", dest="set_for", action="append", default=[],
                    metavar="STRATEGY:KEY=VALUE", help="config overrides for one strategy's runs "
                    "(after --set), e.g. ee_ts:mixed.gamma=0.75")
    ap.add_argument("--out", help="sweep directory (default: runs/sweeps/<config>-q<budget>)")
    ap.add_argument("--address", help="Ray cluster address (default: an embedded local Ray)")
    ap.add_argument("--parallel", type=int, help="runs at a time (default: what resources hold)")
    add_report_options(ap)
    return ap


def main(argv: Sequence[str] | None = None, run_fn: Callable = default_run,
         prepare_fn: Callable | None = default_prepare, log=print) -> int:
    """Exit status 0 when every run completed, 1 when some failed, 2 on bad input, 3 when the
    only incomplete runs stopped cleanly (learner.loop.RunStopped: run the sweep again)."""
    try:
        return run_sweep(build_parser().parse_args(argv), argv, run_fn, prepare_fn, log)
    except (FileNotFoundError, ValueError) as e:  # ConfigError is a ValueError
        print(f"duel sweep: error: {e}", file=sys.stderr)
        return 2


def run_sweep(args, argv, run_fn: Callable, prepare_fn: Callable | None, log) -> int:
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    seeds = parse_seeds(args.seeds)
    targets = R.parse_targets(args.targets)
    if not strategies or not seeds:
        raise SweepError("need at least one strategy (--strategies) and one seed (--seeds)")
    if args.parallel is not None and args.parallel < 1:
        raise SweepError(f"--parallel: expected >= 1, got {args.parallel}")
    probe = load_config(args.config, [*args.sets] + ([f"budget={args.budget}"] if args.budget else []))
    sweep_dir = Path(args.out or f"runs/sweeps/{Path(args.config).stem}-q{probe.budget}").resolve()
    set_for = parse_set_for(args.set_for, strategies)
    specs = plan(args.config, strategies, seeds, args.budget, args.sets, sweep_dir, set_for)
    if run_fn is default_run:  # as `duel run`: model directory, task, prompts, before Ray starts
        from launch.cli import _check_inputs

        _check_inputs(specs[0].config, args.config + (" with --set overrides" if args.sets else ""))
    sweep_dir.mkdir(parents=True, exist_ok=True)
    (sweep_dir / "sweep.json").write_text(json.dumps(
        {"argv": list(argv if argv is not None else sys.argv[1:]), "strategies": strategies,
         "seeds": seeds, "budget": specs[0].config.budget, "set": args.sets,
         "set_for": args.set_for}, indent=1))
    cfg = specs[0].config
    prompts = sum(C.prompts_at(cfg, s) for s in range(cfg.steps))
    if prompts < cfg.budget:
        log(f"warning: {cfg.steps} steps take {prompts} prompts (prompts_per_step and its schedule) "
            f"< budget {cfg.budget}: runs stop at `steps` before spending the budget (--set steps=...)")
    states = {s.run_dir: status(s) for s in specs}
    todo = [s for s in specs if states[s.run_dir] != "complete"]
    counts = {k: list(states.values()).count(k) for k in ("complete", "partial", "new")}
    log(f"sweep {sweep_dir}: {len(specs)} runs ({counts['complete']} complete, "
        f"{counts['partial']} to resume, {counts['new']} new): {len(strategies)} "
        f"strateg{'y' if len(strategies) == 1 else 'ies'} x {describe_seeds(args.seeds, seeds)}")
    errors = execute(todo, run_fn, prepare_fn, args.address, args.parallel, log) if todo else {}
    ran = [s.run_dir for s in specs if (s.run_dir / "config.yaml").is_file()]
    if ran:
        R.report(ran, sweep_dir / "report", targets, metric=args.metric)
        log(f"report: {sweep_dir / 'report' / 'report.md'}")
    for run_dir, err in errors.items():
        log(f"{'' if err.startswith(STOPPED) else 'failed: '}{run_dir}: {err}")
    if not errors:
        return 0
    return 3 if all(err.startswith(STOPPED) for err in errors.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())

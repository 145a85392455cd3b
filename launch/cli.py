"""The `duel` command.

    duel run CONFIG [--set key=value ...] [--address ADDR] [--run-dir DIR]
    duel resume RUN_DIR [--address ADDR]
    duel eval RUN_DIR
    duel export RUN_DIR OUT_DIR [--force] [--peft] [--average]
    duel bandit ... | duel report ... | duel sweep ...     (their own arguments)

Bad input (config file, --set override, task name, model directory) fails before Ray starts,
with a message naming the file, the key and what was expected; the exit status is 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DISPATCH = {  # subcommands that own their argument parsing
    "bandit": ("launch.bandit", "main"),
    "report": ("launch.report", "main"),
    "sweep": ("launch.sweep", "main"),
}


DISPATCH_HELP = {
    "bandit": "the dueling-bandit lab: exploration strategies on synthetic arms, regret table and plot",
    "report": "tables and plots over run or sweep directories: win rate against queries, queries to a target",
    "sweep": "a strategy x seed grid of runs (resumable, on Ray), then its report",
}


def _missing_run_dir(run_dir: str) -> str | None:
    """The error for a RUN_DIR without config.yaml, found before anything slow is imported."""
    cfg = Path(run_dir) / "config.yaml"
    if cfg.is_file():
        return None
    return f"{cfg}: not found; expected a run directory written by `duel run`"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="duel", description="Online alignment as a contextual dueling bandit.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run an experiment from a preset or a YAML file")
    r.add_argument("config", help="preset name (launch/configs/NAME.yaml) or a YAML path")
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set explore.strategy=bai_ts (repeatable)")
    r.add_argument("--address", default=None, help="Ray cluster address (default: a local Ray)")
    r.add_argument("--run-dir", default=None, help="run directory (default: the config's run_dir)")
    s = sub.add_parser("resume", help="continue a stopped run from its latest checkpoint")
    s.add_argument("run_dir")
    s.add_argument("--address", default=None)
    e = sub.add_parser("eval", help="win rate of a run's latest policy on the eval split")
    e.add_argument("run_dir")
    x = sub.add_parser("export", help="write a run's policy as a Hugging Face directory")
    x.add_argument("run_dir")
    x.add_argument("out_dir", help="a new or empty directory")
    x.add_argument("--force", action="store_true",
                   help="replace OUT_DIR if it is a file or holds files (nothing of it is kept)")
    x.add_argument("--peft", action="store_true",
                   help="a LoRA run: write a PEFT adapter directory (loads on top of the base model) "
                        "instead of the merged model")
    x.add_argument("--average", action="store_true",
                   help="write the Polyak average of the policy that the run evaluated (eval.ema) "
                        "instead of the policy as trained")
    for name, text in DISPATCH_HELP.items():
        sub.add_parser(name, help=f"{text} (options: duel {name} --help)", add_help=False)
    return p


def _fail(msg: str) -> int:
    print(f"duel: error: {msg}", file=sys.stderr)
    return 2


def fresh_run_dir(path: str | Path) -> Path:
    """`path` if it is new or empty, else `path-1`, `path-2`, ... (never reuse a run's files)."""
    path = Path(path)
    if not path.exists() or not any(path.iterdir()):
        return path
    i = 1
    while True:
        cand = path.with_name(f"{path.name}-{i}")
        if not cand.exists() or not any(cand.iterdir()):
            return cand
        i += 1


def _check_inputs(cfg, source) -> None:
    """Cheap checks that must pass before Ray starts (invariant 5): the model directory, the
    task or the data and their training and eval prompts, the `erm.encoder` directory, the
    W&B package when asked for. Raises ConfigError naming `source` (the config file)."""
    from duel.config import ConfigError
    from learner.setup import InputError, check_tracking, eval_prompts, resolve_task, task_prompts

    try:
        check_tracking(cfg)
        task = resolve_task(cfg)
        if cfg.policy.path is not None or task is None:
            from learner.setup import check_lora, model_dir_for

            check_lora(cfg, model_dir_for(cfg, task))  # LoRA targets the family lacks
        task_prompts(cfg, task)
        eval_prompts(cfg, task)
        if cfg.erm.encoder:  # loads, with the policy's tokenizer (ConfigError naming the key)
            from learner.setup import check_encoder, model_dir_for

            check_encoder(cfg, model_dir_for(cfg, task))
    except InputError as e:
        raise ConfigError(f"{source}: {e}") from None
    if task is not None and task.max_new_tokens > cfg.sampling.max_new_tokens:
        print(f"duel: warning: task {task.name!r} answers take up to {task.max_new_tokens} tokens "
              f"(its max_new_tokens), but sampling.max_new_tokens is "
              f"{cfg.sampling.max_new_tokens}: longer answers are cut there (--set "
              f"sampling.max_new_tokens={task.max_new_tokens} to give them room)",
              file=sys.stderr, flush=True)


def cmd_run(args) -> int:
    from duel.config import ConfigError
    from launch.presets import load_config

    try:
        cfg = load_config(args.config, args.overrides)
        _check_inputs(cfg, args.config + (" with --set overrides" if args.overrides else ""))
    except ConfigError as e:
        return _fail(str(e))
    run_dir = Path(args.run_dir) if args.run_dir else fresh_run_dir(cfg.run_dir)
    if args.run_dir and (run_dir / "config.yaml").exists():
        return _fail(f"{run_dir} already holds a run; use `duel resume {run_dir}` or another --run-dir")
    return _run(cfg, run_dir, address=args.address, resume=False)


def cmd_resume(args) -> int:
    from duel.config import ConfigError, load_config

    cfg_path = Path(args.run_dir) / "config.yaml"
    if not cfg_path.is_file():
        return _fail(f"{cfg_path}: not found; `duel resume` needs a run directory written by `duel run`")
    try:
        cfg = load_config(cfg_path)
        _check_inputs(cfg, cfg_path)
    except ConfigError as e:
        return _fail(str(e))
    return _run(cfg, Path(args.run_dir), address=args.address, resume=True)


def _run(cfg, run_dir: Path, *, address, resume: bool) -> int:
    import signal

    what = f"task {cfg.task!r}" if cfg.task else f"data {cfg.data.train!r}"
    print(f"duel: {'resuming' if resume else 'starting'} run {run_dir} ({what}, "
          f"{cfg.steps} steps)", file=sys.stderr, flush=True)
    # SIGTERM anywhere in start-up (imports, starting-policy training, Ray, actors) ends as
    # Ctrl-C does: below, with a resume hint; once stepping, the loop checkpoints and stops
    try:
        old = signal.signal(signal.SIGTERM, _interrupt)
    except ValueError:  # not the main thread
        old = None
    try:
        return _run_experiment(cfg, run_dir, address=address, resume=resume)
    except KeyboardInterrupt:
        if (run_dir / "config.yaml").is_file():
            print(f"\nduel: interrupted; resume with: duel resume {run_dir}", file=sys.stderr)
        else:
            print("\nduel: interrupted before the run directory was written; run the same "
                  "command again", file=sys.stderr)
        return 130
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _run_experiment(cfg, run_dir: Path, *, address, resume: bool) -> int:
    from duel.config import ConfigError
    from learner.setup import InputError, model_dir_for

    try:
        model_dir_for(cfg)  # the starting policy: trained now on first use (it says so)
        print("loading Ray and JAX", file=sys.stderr, flush=True)
        from learner.loop import run_experiment

        result = run_experiment(cfg, run_dir, address=address, resume=resume)
    except (InputError, ConfigError) as e:  # raised before Ray starts; nothing was written
        return _fail(str(e))
    except Exception as e:
        loop = sys.modules.get("learner.loop")  # imported above, late (it is slow to import)
        if loop is None or not isinstance(e, loop.RunStopped):
            raise
        if not e.resumable:  # a resume would stop the same way: do not suggest it
            print(f"duel: stopped: {e}", file=sys.stderr)
            return 1
        print(f"duel: stopped: {e}\n  resume with: duel resume {run_dir}", file=sys.stderr)
        return 3
    print(summary(result, run_dir))
    return 0


def summary(result: dict, run_dir: Path) -> str:
    """What `duel run` prints last: the final win rates and where the run directory is."""
    lines = []
    ev = result.get("final_eval")
    if ev:
        lines.append(f"final win rate against the starting policy: {ev['win_rate_vs_start']:.3f} "
                     f"(95% CI {ev['win_rate_vs_start_lo']:.3f}-{ev['win_rate_vs_start_hi']:.3f}, "
                     f"n={ev['n']}, ties count 1/2)")
        lines.append(f"win rate against the task's reference responses: {ev['win_rate']:.3f} "
                     f"(starting policy: {ev['start_win_rate']:.3f})")
        if "expected_win_rate" in ev:
            lines.append("expected win rate against them (mean oracle P over sampled responses): "
                         f"{ev['expected_win_rate']:.3f} (95% CI {ev['expected_win_rate_lo']:.3f}-"
                         f"{ev['expected_win_rate_hi']:.3f}; starting policy: {ev['start_expected_win_rate']:.3f})")
    lines.append(f"steps: {result.get('step')}  queries: {result.get('queries')}  "
                 f"synthetic labels: {result.get('synthetic')}")
    lines.append(f"run directory: {Path(run_dir).resolve()}")
    return "\n".join(lines)


def cmd_eval(args) -> int:
    if (err := _missing_run_dir(args.run_dir)) is not None:
        return _fail(err)
    from learner.offline import evaluate_run

    try:
        ev = evaluate_run(Path(args.run_dir))
    except (FileNotFoundError, ValueError) as e:
        return _fail(str(e))
    print(f"step {ev['step']}: win rate against the starting policy {ev['win_rate_vs_start']:.3f} "
          f"(95% CI {ev['win_rate_vs_start_lo']:.3f}-{ev['win_rate_vs_start_hi']:.3f}); against the "
          f"references {ev['win_rate']:.3f} (95% CI {ev['win_rate_lo']:.3f}-{ev['win_rate_hi']:.3f}; "
          f"starting policy {ev['start_win_rate']:.3f}), n={ev['n']}")
    return 0


def cmd_export(args) -> int:
    if (err := _missing_run_dir(args.run_dir)) is not None:
        return _fail(err)
    from learner.offline import check_export_target, export_run

    try:
        check_export_target(Path(args.out_dir), args.force)  # before the slow imports
        out = export_run(Path(args.run_dir), Path(args.out_dir), force=args.force, peft=args.peft,
                         average=args.average)
    except (OSError, ValueError) as e:
        return _fail(str(e))
    what = "the policy's average (eval.ema)" if args.average else "the policy"
    what = f"{what}: its LoRA adapters (PEFT format)" if args.peft else what
    print(f"exported {what} to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if argv and argv[0] in DISPATCH:
        import importlib

        mod, fn = DISPATCH[argv[0]]
        rc = getattr(importlib.import_module(mod), fn)(argv[1:])
        return int(rc or 0)
    args = _parser().parse_args(argv)
    return {"run": cmd_run, "resume": cmd_resume, "eval": cmd_eval, "export": cmd_export}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())

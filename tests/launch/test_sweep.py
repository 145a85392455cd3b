"""duel sweep: the strategy × seed grid on an embedded Ray with a fake run function, then the report."""

import functools
import json
import math
import sys
from pathlib import Path

import pytest

from duel import config as C
from launch import sweep

SCALE = {"passive": 150.0, "ee_ts": 50.0}  # queries to reach 63% of the fake gain


def fake_win_rate(strategy, seed, queries):
    return 0.1 + 0.5 * (1 - math.exp(-queries / SCALE[strategy])) + 0.01 * seed


def fake_run(config, run_dir, stop_step=None):
    """A resumable stand-in for learner.loop.run_experiment: writes config.yaml + metrics.jsonl."""
    d = Path(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    C.save_config(config, d / "config.yaml")
    metrics = d / "metrics.jsonl"
    rows = [json.loads(x) for x in metrics.read_text().splitlines()] if metrics.exists() else []
    start = max([r["step"] for r in rows], default=-1) + 1
    with open(d / "calls.txt", "a") as f:
        f.write(f"start {start}\n")
    with open(metrics, "a") as f:
        step = start
        while True:
            queries = min(step * config.prompts_per_step, config.budget)
            syn = step * 2 if config.explore.strategy == "ee_ts" else 0
            f.write(json.dumps({"kind": "train", "step": step, "queries": queries,
                                "synthetic": syn}) + "\n")
            if step % config.eval.every == 0 or queries >= config.budget:
                w = fake_win_rate(config.explore.strategy, config.seed, queries)
                f.write(json.dumps({"kind": "eval", "step": step, "queries": queries,
                                    "win_rate": w, "win_rate_lo": w - 0.1,
                                    "win_rate_hi": w + 0.1, "n": 32}) + "\n")
            if queries >= config.budget or step == stop_step:
                return
            step += 1


def fake_prepare(marker, config):
    with open(marker, "a") as f:
        f.write(config.task + "\n")
    return "/cache/policy"


@pytest.fixture
def preset(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text("task: demo\nsteps: 1000\nprompts_per_step: 10\neval:\n  every: 5\n")
    return p


def test_sweep_two_by_two_completes_skips_resumes_and_reports(tmp_path, preset):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    out, marker = tmp_path / "sw", tmp_path / "prepared.txt"
    argv = [str(preset), "--strategies", "passive,ee_ts", "--seeds", "2", "--budget", "200",
            "--out", str(out), "--parallel", "2", "--set", "eval.num_prompts=8",
            "--targets", "0.3,0.4,passive"]
    # before the sweep: one run already complete, one stopped half-way
    for strategy, seed, stop in (("passive", 0, None), ("ee_ts", 1, 7)):
        cfg = sweep.plan(str(preset), [strategy], [seed], 200, ["eval.num_prompts=8"], out)[0]
        fake_run(cfg.config, cfg.run_dir, stop_step=stop)
    logs = []
    rc = sweep.main(argv, run_fn=fake_run, prepare_fn=functools.partial(fake_prepare, marker),
                    log=logs.append)
    assert rc == 0, logs
    assert marker.read_text() == "demo\n"  # starting policy built once, before the fan-out
    calls = {d.name: (d / "calls.txt").read_text().split("\n")[:-1] for d in out.iterdir()
             if (d / "calls.txt").exists()}
    assert calls == {"passive-s0": ["start 0"], "passive-s1": ["start 0"],
                     "ee_ts-s0": ["start 0"], "ee_ts-s1": ["start 0", "start 8"]}
    assert any("1 complete, 1 to resume, 2 new" in x for x in logs)
    cfg = C.load_config(out / "ee_ts-s1" / "config.yaml")
    assert (cfg.explore.strategy, cfg.seed, cfg.budget, cfg.eval.num_prompts) == ("ee_ts", 1, 200, 8)

    data = json.loads((out / "report" / "report.json").read_text())["tasks"]["demo"]
    s = data["strategies"]
    for strategy in SCALE:
        finals = [fake_win_rate(strategy, seed, 200) for seed in (0, 1)]
        assert s[strategy]["final"]["mean"] == pytest.approx(sum(finals) / 2)
        assert s[strategy]["complete"] == 2
    # queries to 0.4: eval every 5 steps = 50 queries; interpolate between the evals around it
    for strategy in SCALE:
        per_seed = []
        for seed in (0, 1):
            qs = [0, 50, 100, 150, 200]
            ws = [fake_win_rate(strategy, seed, q) for q in qs]
            i = next(k for k, w in enumerate(ws) if w >= 0.4)
            per_seed.append(qs[i - 1] + (qs[i] - qs[i - 1]) * (0.4 - ws[i - 1]) / (ws[i] - ws[i - 1]))
        assert s[strategy]["targets"]["0.40"]["per_seed"] == pytest.approx(per_seed)
    # the ratio is between crossings of the seed-mean curves (both seeds evaluate at the same queries)
    on_mean = {}
    for strategy in SCALE:
        qs = [0, 50, 100, 150, 200]
        ws = [sum(fake_win_rate(strategy, seed, q) for seed in (0, 1)) / 2 for q in qs]
        i = next(k for k, w in enumerate(ws) if w >= 0.4)
        on_mean[strategy] = qs[i - 1] + (qs[i] - qs[i - 1]) * (0.4 - ws[i - 1]) / (ws[i] - ws[i - 1])
    ratio = on_mean["ee_ts"] / on_mean["passive"]
    assert s["ee_ts"]["targets"]["0.40"]["ratio"] == pytest.approx(ratio)
    assert ratio < 0.5  # the fake ee_ts learns three times faster
    assert s["ee_ts"]["synthetic"]["mean"] == 2 * 20  # 20 steps of 10 queries, 2 synthetic each
    assert (out / "report" / "report.md").exists() and (out / "report" / "win_rate_demo.png").exists()

    # a second invocation finds everything complete and runs nothing
    logs.clear()
    assert sweep.main(argv, run_fn=fake_run, prepare_fn=None, log=logs.append) == 0
    assert any("4 complete, 0 to resume, 0 new" in x for x in logs)
    assert (out / "ee_ts-s1" / "calls.txt").read_text().count("start") == 2


def test_sweep_refuses_a_run_dir_made_with_other_settings(tmp_path, preset, capsys):
    out = tmp_path / "sw"
    spec = sweep.plan(str(preset), ["passive"], [0], 100, [], out)[0]
    fake_run(spec.config, spec.run_dir)
    rc = sweep.main([str(preset), "--strategies", "passive", "--seeds", "1", "--budget", "200",
                     "--out", str(out)], run_fn=fake_run, prepare_fn=None, log=lambda _: None)
    assert rc == 2
    err = capsys.readouterr().err
    assert "passive-s0/config.yaml" in err and "budget" in err
    assert (spec.run_dir / "calls.txt").read_text() == "start 0\n"  # not run again


def test_seed_and_config_errors(tmp_path, preset, capsys):
    assert sweep.parse_seeds("3") == [0, 1, 2] and sweep.parse_seeds("4,1") == [1, 4]
    assert sweep.parse_seeds("100-103") == [100, 101, 102, 103] and sweep.parse_seeds("100,") == [100]
    for bad in ("many", "5-3", "-2", "1-x"):
        with pytest.raises(sweep.SweepError, match="--seeds"):
            sweep.parse_seeds(bad)
    # a count says it is one: `--seeds 100` is 100 runs, not seed 100
    assert sweep.describe_seeds("100", sweep.parse_seeds("100")) == \
        "seeds 0..99 (--seeds 100 is a count; seed 100 alone: --seeds 100,)"
    assert sweep.describe_seeds("100-103", [100, 101, 102, 103]) == "seeds 100, 101, 102, 103"
    with pytest.raises(C.ConfigError, match="explore.strategy"):
        sweep.plan(str(preset), ["ee_tss"], [0], 100, [], tmp_path / "x")
    with pytest.raises(sweep.SweepError, match="--budget"):
        sweep.plan(str(preset), ["passive"], [0], None, [], tmp_path / "x")
    argv = [str(preset), "--strategies", "passive", "--budget", "10", "--out", str(tmp_path / "y")]
    assert sweep.main([*argv, "--set", "erm.num_member=3"], prepare_fn=None) == 2
    assert "erm.num_members" in capsys.readouterr().err  # the config module's suggestion
    assert not (tmp_path / "y").exists()  # nothing written before the input is checked


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:os.fork")  # Ray starts after JAX built the tiny policy
def test_real_loop_tiny_sweep(tmp_path):
    """2 strategies × 2 seeds through learner.loop.run_experiment at a tiny budget, then report."""
    pytest.importorskip("learner.loop")
    from tests.helpers import tiny
    policy = tiny.tiny_model_dir(tmp_path / "policy")
    preset = tmp_path / "tiny.yaml"
    preset.write_text(f"""
task: arithmetic
steps: 4
prompts_per_step: 4
candidates: 2
policy: {{path: {policy}}}
sampling: {{max_new_tokens: 4}}
erm: {{num_members: 2, hidden: [8]}}
optim: {{lr: 1.0e-3}}
eval: {{every: 1, num_prompts: 8}}
checkpoint: {{every: 1, keep: 1}}
resources: {{generators: 1, oracle_actors: 1}}
logging: {{tensorboard: false, progress: false}}
""")
    out = tmp_path / "sw"
    argv = [str(preset), "--strategies", "passive,ee_ts", "--seeds", "2", "--budget", "8",
            "--out", str(out), "--parallel", "2"]
    logs = []
    assert sweep.main(argv, log=logs.append) == 0, logs
    report = json.loads((out / "report" / "report.json").read_text())
    metric = report["metric"]  # expected_win_rate: every run logs it (eval.samples defaults to 4)
    assert metric == "expected_win_rate"
    s = report["tasks"]["arithmetic"]["strategies"]
    for strategy in ("passive", "ee_ts"):
        assert s[strategy]["seeds"] == [0, 1] and s[strategy]["complete"] == 2
        finals = []
        for seed in (0, 1):
            rows = [json.loads(x) for x in (out / f"{strategy}-s{seed}" / "metrics.jsonl")
                    .read_text().splitlines()]
            evals = [r for r in rows if r["kind"] == "eval"]
            assert evals[-1]["queries"] == 8  # 2 steps of 4 queries, then the budget stops it
            finals.append(evals[-1][metric])
        assert s[strategy]["final"]["per_seed"] == pytest.approx(finals)
        assert s[strategy]["final"]["mean"] == pytest.approx(sum(finals) / 2)
        assert s[strategy]["oracle_queries"]["mean"] == 8
    logs.clear()
    assert sweep.main(argv, log=logs.append) == 0  # all complete: nothing runs again
    assert any("4 complete, 0 to resume, 0 new" in x for x in logs)


def stopping_run(config, run_dir):
    """A run whose disk is full at its checkpoint (ee_ts) or that crashes (bai_ts)."""
    from learner.loop import RunStopped

    if config.explore.strategy == "bai_ts":
        raise ValueError("boom")
    if config.explore.strategy == "uncertainty":  # a stop that a resume cannot fix: a failure
        raise RunStopped("oracle failed: cannot grade", resumable=False)
    fake_run(config, run_dir, stop_step=3)
    if config.explore.strategy == "ee_ts":
        raise RunStopped("checkpoint write failed: X/checkpoints/4: No space left on device")


@pytest.mark.parametrize("strategies,rc", [("passive,ee_ts", 3), ("ee_ts,bai_ts", 1),
                                           ("ee_ts,uncertainty", 1)])
def test_sweep_reports_a_stopped_run_in_one_line_and_exit_3(tmp_path, preset, strategies, rc):
    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    logs = []
    argv = [str(preset), "--strategies", strategies, "--seeds", "1", "--budget", "200",
            "--out", str(tmp_path / "sw"), "--parallel", "2"]
    assert sweep.main(argv, run_fn=stopping_run, prepare_fn=None, log=logs.append) == rc, logs
    # the run's own message, one line, no Ray task banner or traceback
    assert "STOPPED ee_ts-s0: checkpoint write failed: X/checkpoints/4: No space left on device" in logs
    assert f"{tmp_path / 'sw' / 'ee_ts-s0'}: stopped: checkpoint write failed: X/checkpoints/4: No " \
        "space left on device; run the sweep again to resume it" in logs
    assert not any("ray::" in x or "Traceback" in x for x in logs), logs
    if "bai_ts" in strategies:
        assert "FAILED bai_ts-s0: ValueError: boom" in logs
    if "uncertainty" in strategies:
        assert "FAILED uncertainty-s0: RunStopped: oracle failed: cannot grade" in logs
        assert not any("uncertainty-s0: stopped" in x for x in logs), logs


def env_run(config, run_dir):
    """A run function that records the compile-cache setting its Ray task sees."""
    import os

    Path(run_dir).mkdir(parents=True, exist_ok=True)
    (Path(run_dir) / "jax_cache.txt").write_text(os.environ.get("JAX_COMPILATION_CACHE_DIR", "unset"))
    raise RuntimeError("recorded")


def test_sweep_runs_share_the_persistent_compile_cache(tmp_path, preset, monkeypatch):
    """As `duel run`: the runs' Ray workers get JAX_COMPILATION_CACHE_DIR under $DUEL_CACHE."""
    import ray
    import ray.cloudpickle

    if ray.is_initialized():
        ray.shutdown()  # the setting is made before Ray starts
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv("DUEL_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "sw"
    rc = sweep.main([str(preset), "--strategies", "passive", "--seeds", "1", "--budget", "20",
                     "--out", str(out)], run_fn=env_run, prepare_fn=None, log=lambda _: None)
    assert rc == 1  # the fake run fails after recording
    assert (out / "passive-s0" / "jax_cache.txt").read_text() == str(tmp_path / "cache" / "jax")


def test_set_for_applies_to_one_strategy_only(tmp_path, preset):
    set_for = sweep.parse_set_for(["ee_ts:mixed.gamma=0.75", "ee_ts:eval.every=20"], ["passive", "ee_ts"])
    specs = sweep.plan(str(preset), ["passive", "ee_ts"], [0], 100, ["mixed.burn_in=2"], tmp_path, set_for)
    got = {s.strategy: (s.config.mixed.gamma, s.config.eval.every, s.config.mixed.burn_in) for s in specs}
    assert got == {"passive": (0.0, 5, 2), "ee_ts": (0.75, 20, 2)}
    with pytest.raises(sweep.SweepError, match="STRATEGY:KEY=VALUE"):
        sweep.parse_set_for(["mixed.gamma=0.75"], ["ee_ts"])
    with pytest.raises(sweep.SweepError, match="not one of this sweep's strategies"):
        sweep.parse_set_for(["bai_ts:mixed.gamma=0.75"], ["passive", "ee_ts"])


def test_a_config_file_per_strategy_block_applies_to_its_strategy_only(tmp_path):
    p = tmp_path / "recipe.yaml"
    p.write_text("task: demo\nsteps: 1000\nper_strategy:\n  ee_ts: {mixed: {gamma: 0.75}, eval: {every: 20}}\n")
    set_for = sweep.parse_set_for(["ee_ts:eval.every=40"], ["passive", "ee_ts"])  # beats the block
    specs = sweep.plan(str(p), ["passive", "ee_ts"], [0], 100, [], tmp_path, set_for)
    got = {s.strategy: (s.config.mixed.gamma, s.config.eval.every) for s in specs}
    default = C.Config()
    assert got == {"passive": (default.mixed.gamma, default.eval.every), "ee_ts": (0.75, 40)}
    assert default.eval.every not in (20, 40)

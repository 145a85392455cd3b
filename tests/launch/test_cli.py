"""`duel`: bad input fails before Ray starts; run -> eval -> export end to end; dispatch."""

import os

import numpy as np
import pytest
import ray
import yaml

from launch import cli
from tests.helpers.tiny import TINY_TASK, tiny_model_dir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(autouse=True)
def env(monkeypatch, tmp_path_factory):
    import tempfile

    base = tempfile.gettempdir()
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", os.path.join(base, "duel-test-jax-cache"))
    monkeypatch.setenv("DUEL_CACHE", os.path.join(base, "duel-test-cache"))
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    yield
    assert not ray.is_initialized() or ray.shutdown() is None


@pytest.mark.parametrize("argv, message", [
    (["run", "demo", "--set", "explore.strategy=ee-ts"], "explore.strategy' expected one of"),
    (["run", "demo", "--set", "explor.strategy=ee_ts"], "did you mean 'explore'"),
    (["run", "no-such-preset"], "neither a YAML file nor a preset"),
    (["run", "demo", "--set", "policy.path=/nonexistent/model"], "policy.path"),
    (["run", "demo", "--set", "task=no_such_task"], "key 'task'"),
    (["resume", "/nonexistent/run"], "config.yaml: not found"),
])
def test_bad_input_fails_before_ray_starts(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert not ray.is_initialized()
    assert list(tmp_path.iterdir()) == []  # nothing written


@pytest.mark.parametrize("name, module", [("bandit", "launch.bandit"), ("report", "launch.report"),
                                          ("sweep", "launch.sweep")])
def test_dispatch_passes_the_rest_of_argv(name, module, monkeypatch):
    import importlib

    got = []
    monkeypatch.setattr(importlib.import_module(module), "main", lambda argv: got.append(argv) or 7)
    assert cli.main([name, "--x", "1", "RUN"]) == 7
    assert got == [["--x", "1", "RUN"]]


def test_help_of_every_subcommand_imports_nothing_slow():
    """`duel CMD --help` answers before JAX (seconds to import), Ray or Flax is imported."""
    import subprocess
    import sys

    from tests.helpers.hang import HANG_TIMEOUT_S

    commands = ["run", "resume", "eval", "export", *cli.DISPATCH]
    code = ("import sys\nfrom launch import cli\nfor c in sys.argv[1:]:\n"
            "    try:\n        cli.main([c, '--help'])\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('jax', 'ray', 'flax', 'optax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, *commands], capture_output=True, text=True,
                         cwd=ROOT, timeout=HANG_TIMEOUT_S, check=True).stdout
    assert out.count("usage: duel") == len(commands) and out.splitlines()[-1] == "[]", out


def test_bandit_help_says_what_the_lab_says():
    """launch/bandit.py reads the lab's description and constants from its source, unimported."""
    import duel.tasks.bandit as B
    from launch import bandit

    p = bandit.parser()
    assert p.description == B.__doc__.split("\n")[0]
    options = {a.dest: a for a in p._actions}
    assert tuple(options["utility"].choices) == B.UTILITIES
    assert options["strategies"].default == ",".join(B.LAB_STRATEGIES)


def test_fresh_run_dir_never_reuses_a_run(tmp_path):
    (tmp_path / "r").mkdir()
    assert cli.fresh_run_dir(tmp_path / "r") == tmp_path / "r"
    (tmp_path / "r" / "metrics.jsonl").write_text("")
    assert cli.fresh_run_dir(tmp_path / "r") == tmp_path / "r-1"


@pytest.mark.slow
def test_run_eval_export_end_to_end(tmp_path, capsys):
    model = tiny_model_dir(tmp_path / "policy")
    cfg = {"task": TINY_TASK, "policy": {"path": model}, "steps": 2, "prompts_per_step": 4,
           "candidates": 4, "sampling": {"max_new_tokens": 4},
           "erm": {"num_members": 4, "hidden": [8]}, "eval": {"every": 0, "num_prompts": 8},
           "resources": {"generators": 2}, "logging": {"tensorboard": False, "progress": False}}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    run_dir = tmp_path / "run"
    assert cli.main(["run", str(tmp_path / "tiny.yaml"), "--run-dir", str(run_dir),
                     "--set", "optim.lr=1e-2"]) == 0
    out = capsys.readouterr().out
    assert "final win rate against the starting policy:" in out
    assert f"run directory: {run_dir.resolve()}" in out
    assert "steps: 2  queries: 8" in out
    assert not ray.is_initialized()  # the embedded Ray is gone
    # the resolved config (with the override) is the run's config
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["optim"]["lr"] == 1e-2
    assert cli.main(["run", str(tmp_path / "tiny.yaml"), "--run-dir", str(run_dir)]) == 2

    assert cli.main(["eval", str(run_dir)]) == 0
    assert "step 2: win rate against the starting policy" in capsys.readouterr().out

    out_dir = tmp_path / "export"
    assert cli.main(["export", str(run_dir), str(out_dir)]) == 0
    # transformers loads the export; its logits are the run's final policy's
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from learner.offline import restored_learner

    hf = AutoModelForCausalLM.from_pretrained(out_dir)
    tok = AutoTokenizer.from_pretrained(out_dir)
    ids = tok("12+30=")["input_ids"]
    with torch.no_grad():
        ref = hf(torch.tensor([ids])).logits.numpy()
    learner, meta = restored_learner(run_dir)
    assert meta["checkpoint_step"] == 2
    ours = np.asarray(learner.policy_model()(np.array([ids]), np.ones((1, len(ids)), np.int32)))
    np.testing.assert_allclose(ref, ours, atol=1e-4)
    # and it is not the starting policy any more
    start = AutoModelForCausalLM.from_pretrained(model)
    with torch.no_grad():
        assert not np.allclose(start(torch.tensor([ids])).logits.numpy(), ref, atol=1e-4)


@pytest.mark.slow
def test_start_up_says_what_it_does_and_sigterm_ends_it_with_a_resume_hint(tmp_path):
    """`duel run` prints each start-up stage; SIGTERM while the actors start ends the run as
    Ctrl-C does (Ray shut down, a resume hint, no C++ stack dump), and no Ray token notice or
    JAX fork warning is printed."""
    from tests.helpers.hang import HANG_TIMEOUT_S
    import signal
    import subprocess
    import sys

    from duel.config import load_config
    from learner.setup import prepare_inputs

    model = tiny_model_dir(tmp_path / "policy")
    cfg = {"task": TINY_TASK, "policy": {"path": model}, "steps": 2, "prompts_per_step": 4,
           "candidates": 4, "sampling": {"max_new_tokens": 4}, "erm": {"num_members": 4, "hidden": [8]},
           "eval": {"every": 0, "num_prompts": 8}, "resources": {"generators": 1},
           "logging": {"tensorboard": False, "progress": False}}
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(cfg))
    run_dir = tmp_path / "run"
    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-m", "launch", "run", str(tmp_path / "tiny.yaml"),
                             "--run-dir", str(run_dir)], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if line.startswith("starting the actors"):
            break
    proc.send_signal(signal.SIGTERM)
    out, rest = proc.communicate(timeout=HANG_TIMEOUT_S)
    err = "".join(lines) + rest
    assert lines[0] == f"duel: starting run {run_dir} (task '{TINY_TASK}', 2 steps)\n", err
    assert "starting Ray (local)\n" in lines, err
    assert lines[-1] == "starting the actors: 1 learner, 1 generator, 1 oracle\n", err
    # stopped during start-up (130), or just after stepping began (3: checkpoint, stop)
    assert proc.returncode in (130, 3), err
    assert f"resume with: duel resume {run_dir}" in err, err
    for noise in ("SIGTERM received", "Traceback", "os.fork()", "Token authentication"):
        assert noise not in err, err
    # the run directory resumes (a run stopped before its first checkpoint starts at step 0)
    assert prepare_inputs(load_config(run_dir / "config.yaml"), run_dir, resume=True).run_dir == run_dir


def test_a_task_whose_answers_do_not_fit_sampling_max_new_tokens_is_warned_about(capsys):
    from launch.presets import load_config

    cli._check_inputs(load_config("demo"), "demo")  # arithmetic: 6 tokens, the demo samples 6
    assert capsys.readouterr().err == ""
    cli._check_inputs(load_config("demo", ["task=style"]), "demo")
    assert capsys.readouterr().err == (
        "duel: warning: task 'style' answers take up to 14 tokens (its max_new_tokens), but "
        "sampling.max_new_tokens is 6: longer answers are cut there (--set "
        "sampling.max_new_tokens=14 to give them room)\n")

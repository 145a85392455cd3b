"""The driver builds a task's starting policy in a child process, says so and shows progress."""

from pathlib import Path

from jax._src import xla_bridge

from duel.tasks import get_task
from learner.setup import build_starting_policy
from tests.helpers.tiny import TINY_TASK


def test_first_use_trains_in_a_child_with_progress_then_reuses(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("DUEL_CACHE", str(tmp_path / "cache"))
    started = bool(xla_bridge._backends)
    task = get_task(TINY_TASK)
    out = build_starting_policy(task)
    assert out == task.starting_policy_dir(tmp_path / "cache") and (out / "task.json").is_file()
    err = capfd.readouterr().err
    assert err.startswith(f"training the starting policy of task 'tiny_arithmetic' (30 SFT steps, "
                          f"once: it is cached in {out})\n"), err
    # stderr is not a terminal here: a line at each quarter of the SFT steps
    assert [x.split(",")[0] for x in err.splitlines() if x.startswith("  SFT")] == [
        "  SFT step 7/30", "  SFT step 15/30", "  SFT step 22/30", "  SFT step 30/30"], err
    assert bool(xla_bridge._backends) == started  # JAX ran in the child, not here
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary folder left
    # cached: no message, no child
    assert build_starting_policy(task) == out
    assert capfd.readouterr().err == ""


def test_the_child_builds_without_the_callers_xla_flags(tmp_path, monkeypatch, capfd):
    # XLA options change the SFT's float rounding, so the cached policy (one per task spec) would
    # depend on the flags of whoever built it first (reverse: two different policies under
    # --xla_backend_optimization_level=0 and the default, docs/results/tuning17/PLAN.md). The child
    # drops XLA_FLAGS: an unknown flag, fatal to any JAX backend that reads it, does not reach it.
    monkeypatch.setenv("DUEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("XLA_FLAGS", "--xla_no_such_flag_for_duel_tests")
    task = get_task(TINY_TASK)
    out = build_starting_policy(task)
    assert (out / "task.json").is_file()
    assert "no_such_flag" not in capfd.readouterr().err


def test_a_sweep_builds_it_in_the_same_child(tmp_path, monkeypatch):
    # `duel sweep` builds the starting policy before its runs (launch.sweep.default_prepare). It
    # used to train it in its own Ray task with the caller's XLA_FLAGS, so a sweep under
    # --xla_backend_optimization_level=0 cached another `reverse` policy than a run would
    # (docs/results/tuning23/PLAN.md). Training in the calling process fails here; the spawned
    # child (a fresh interpreter, not patched) builds it.
    from launch.presets import load_config
    from launch.sweep import default_prepare

    def here(self, *args, **kwargs):
        raise AssertionError("the starting policy was trained in the caller's process")

    monkeypatch.setenv("DUEL_CACHE", str(tmp_path / "cache"))
    task = get_task(TINY_TASK)
    monkeypatch.setattr(type(task), "starting_policy", here)
    out = default_prepare(load_config("demo", [f"task={TINY_TASK}"]))
    assert out == str(task.starting_policy_dir(tmp_path / "cache"))
    assert (Path(out) / "task.json").is_file()

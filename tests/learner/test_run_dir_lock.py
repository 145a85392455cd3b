"""One process per run directory (learner.setup.run_dir_lock): a second run of a busy directory
is refused before it writes anything (two would pay each oracle query twice and write each label
twice into one ledger, as two sweeps launched on one directory once did); the lock dies with
its holder, however it exits, so a killed run resumes."""

import os
import signal
import subprocess
import sys

import pytest

from learner.loop import run_experiment
from learner.setup import LOCK_FILE, RunDirBusy, RunDirError, run_dir_lock
from tests.helpers.tiny import tiny_config, tiny_model_dir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_a_held_run_dir_refuses_a_second_holder_and_frees_on_exit(tmp_path):
    run = tmp_path / "run"
    with run_dir_lock(run):
        assert f"pid {os.getpid()}" in (run / LOCK_FILE).read_text()
        with pytest.raises(RunDirBusy, match=rf"{run}: another process is running this run "
                                             rf"directory \(pid {os.getpid()} on .*\)"):
            with run_dir_lock(run):
                pass
    with run_dir_lock(run):  # released on exit
        pass
    assert issubclass(RunDirBusy, RunDirError)  # the CLI's bad-input path: exit 2, the message


def test_run_experiment_on_a_busy_dir_writes_nothing(tmp_path):
    model = tiny_model_dir(tmp_path / "policy")
    run = tmp_path / "run"
    with run_dir_lock(run):
        before = sorted(p.name for p in run.iterdir())
        with pytest.raises(RunDirBusy):
            run_experiment(tiny_config(model, steps=1), run)  # refused before Ray starts
        assert sorted(p.name for p in run.iterdir()) == before == [LOCK_FILE]


def test_bad_input_makes_no_run_dir(tmp_path):
    with pytest.raises(RunDirError):  # resume=True without a run: refused before the lock
        run_experiment(tiny_config(None, steps=1), tmp_path / "run", resume=True)
    assert not (tmp_path / "run").exists()


def test_the_lock_dies_with_a_killed_holder(tmp_path):
    run = tmp_path / "run"
    code = ("import sys, time; from learner.setup import run_dir_lock\n"
            "with run_dir_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(600)\n")
    p = subprocess.Popen([sys.executable, "-c", code, str(run)], cwd=ROOT, stdout=subprocess.PIPE,
                         text=True, env={**os.environ, "PYTHONPATH": ROOT})
    try:
        assert p.stdout.readline().strip() == "held"
        with pytest.raises(RunDirBusy, match=f"pid {p.pid} "):
            with run_dir_lock(run):
                pass
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    with run_dir_lock(run):  # the kernel dropped the killed holder's lock
        pass

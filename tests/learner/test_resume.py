"""Exact resume (issue 8): a driver killed with SIGKILL, a corrupt newest checkpoint.

Sync mode, fixed seed, tiny models on CPU. "Bit-identical" is checked on the checkpoints: each
stores the SHA-256 of every array it holds (policy parameters, AdamW state, ERM parameters and
optimizer, replay buffer), and restore verifies them, so equal digests mean equal bits.
Oracle calls are counted by `tests.helpers.counting_oracle` in a file that survives the death
of any process.
"""

import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from duel.checkpoint import all_steps
from duel.config import to_dict
from duel.ledger import Ledger
from duel.metrics import read_metrics
from launch import cli
from learner.loop import run_experiment
from tests.helpers import counting_oracle
from tests.helpers.run_dirs import counters, digests, ledger_rows, rows
from tests.helpers.tiny import tiny_config, tiny_model_dir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("counting_ray")]  # tests/conftest.py

# 4 steps of 4 prompts; mixed preference after step 1: queries 4, 2, 2, 2 (10 in all); the label
# replay (capacity 6 < 10) wraps around before the end
OVER = {"steps": 4, "checkpoint.every": 2, "checkpoint.keep": 3, "resources.generators": 1,
        "mixed.gamma": 0.5, "mixed.burn_in": 1, "eval.num_prompts": 4,
        # label replay: 2 more policy updates per step on paid labels, never a query
        "replay.updates": 2, "replay.capacity": 6}
QUERIES = 10


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("policy") / "tiny")


@pytest.fixture(scope="module")
def config(model):
    return tiny_config(model, **counting_oracle.oracle_config(**OVER))


@pytest.fixture(scope="module")
def straight(tmp_path_factory, config, oracle_dir):
    """The reference: 4 steps, never stopped."""
    run_dir = tmp_path_factory.mktemp("straight")
    before = counting_oracle.pairs(oracle_dir)
    res = run_experiment(config, run_dir)
    assert res["step"] == 4 and res["queries"] == QUERIES
    assert counting_oracle.pairs(oracle_dir) - before == QUERIES  # one oracle call per query
    return run_dir


KILLED_DRIVER = textwrap.dedent("""
    import json, os, signal, sys
    from duel.config import from_dict
    from learner.loop import run_experiment

    cfg = from_dict(json.loads(sys.argv[1]))

    def kill_at_3(loop, step):
        if step == 3:  # step 3's labels are in the ledger; the newest checkpoint is step 2
            os.kill(os.getpid(), signal.SIGKILL)

    run_experiment(cfg, sys.argv[2], hooks={"after_step": kill_at_3})
    print("not killed")
""")


def test_driver_killed_with_sigkill_resumes_bit_identical(tmp_path, config, straight, oracle_dir, capsys):
    from tests.helpers.hang import HANG_TIMEOUT_S
    run_dir = tmp_path / "killed"
    sub_oracle = tmp_path / "oracle"
    sub_oracle.mkdir()
    env = {**os.environ, "PYTHONPATH": ROOT, counting_oracle.ENV: str(sub_oracle)}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_DRIVER, __import__("json").dumps(to_dict(config)),
                             str(run_dir)], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=HANG_TIMEOUT_S)
    finally:
        try:  # the driver's own Ray processes, should any outlive it
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == -signal.SIGKILL, out[-3000:]
    assert "not killed" not in out
    # what the dead driver left: checkpoint 2, the ledger through step 3, 3 metrics rows
    assert all_steps(run_dir) == [2]
    assert counters(run_dir, 2)["queries"] == 6
    assert len(Ledger(run_dir, readonly=True)) == 8
    assert [r["step"] for r in read_metrics(run_dir, "train")] == [1, 2, 3]
    assert counting_oracle.pairs(sub_oracle) == 8

    before = counting_oracle.pairs(oracle_dir)
    capsys.readouterr()
    assert cli.main(["resume", str(run_dir)]) == 0
    assert f"steps: 4  queries: {QUERIES}" in capsys.readouterr().out
    # step 3's 2 labels came from the ledger: only step 4's 2 queries were paid again
    assert counting_oracle.pairs(oracle_dir) - before == 2
    assert counting_oracle.pairs(sub_oracle) + 2 == QUERIES
    c = counters(run_dir, 4)
    assert (c["queries"], c["synthetic"], c["reused"]) == (QUERIES, 6, 2)

    # bit-identical to the run never stopped: parameters, AdamW, ERM, buffer; ledger; metrics
    assert digests(run_dir, 4, replay=True) == digests(straight, 4, replay=True)
    assert {k: v for k, v in c.items() if k != "reused"} == \
        {k: v for k, v in counters(straight, 4).items() if k != "reused"}
    assert ledger_rows(run_dir) == ledger_rows(straight)
    assert len({e["pair_id"] for e in ledger_rows(run_dir)}) == QUERIES
    assert rows(run_dir) == rows(straight)
    assert [r["kind"] for r in read_metrics(run_dir)] == ["train"] * 4 + ["eval"]


def test_corrupt_newest_checkpoint_falls_back_with_a_message(tmp_path, straight, oracle_dir, capsys):
    run_dir = tmp_path / "corrupt"
    shutil.copytree(straight, run_dir)
    want = digests(run_dir, 4, replay=True)
    assert all_steps(run_dir) == [2, 4]
    # garble every data file of checkpoint 4 (TensorStore's `d/` files). Not one chosen file:
    # OCDBT keeps superseded b-tree nodes, and a per-process manifest and the sharding file that a
    # restore against a known template never reads, so garbling any one file may change nothing
    # restored (the checksums would then pass, rightly); which file is largest varies by machine.
    files = [p for p in (run_dir / "checkpoints" / "4" / "state").rglob("*")
             if p.is_file() and p.parent.name == "d"]
    assert files
    for victim in files:
        data = bytearray(victim.read_bytes())
        mid = len(data) // 2
        data[mid:mid + 64] = bytes(b ^ 0xFF for b in data[mid:mid + 64])
        victim.write_bytes(bytes(data))

    before = counting_oracle.pairs(oracle_dir)
    capsys.readouterr()
    assert cli.main(["resume", str(run_dir)]) == 0
    out = capsys.readouterr()
    shown = out.out + out.err
    assert f"checkpoint {run_dir / 'checkpoints' / '4'} refused (corrupt or partial)" in shown, shown
    assert "resumed from checkpoint step 2" in shown, shown
    # steps 3 and 4 were redone from checkpoint 2 with the ledger's labels: nothing paid again
    assert counting_oracle.pairs(oracle_dir) == before
    assert counters(run_dir, 4)["reused"] == 4
    assert digests(run_dir, 4, replay=True) == want
    assert rows(run_dir) == rows(straight)
    assert ledger_rows(run_dir) == ledger_rows(straight)
    # the refused checkpoint was moved aside, not deleted
    aside = list((run_dir / "checkpoints-superseded").iterdir())
    assert [p.name.split("-")[0] for p in aside] == ["4"]

"""Faults (issue 8): a generator killed with SIGKILL mid-step; an oracle outage past its retry
budget, then `duel resume`. Neither loses or re-buys a label, and neither changes the result:
both runs end bit-identical (checkpoint digests of every array, metrics, ledger)."""

import contextlib
import io
import os
import re
import signal

import pytest
import ray
import yaml

from duel.checkpoint import all_steps
from duel.config import to_dict
from duel.ledger import Ledger
from duel.metrics import read_metrics
from launch import cli
from learner.loop import run_experiment
from tests.learner import counting_oracle
from tests.learner.test_resume import counters, digests, ledger_rows, rows
from tests.learner.tiny import tiny_config, tiny_model_dir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

pytestmark = pytest.mark.slow

OVER = {"steps": 4, "checkpoint.every": 2, "checkpoint.keep": 3, "resources.generators": 1,
        "oracle.max_retries": 1, "eval.num_prompts": 4}
QUERIES = 16  # 4 steps x 4 prompts, all paid


@pytest.fixture(scope="module")
def oracle_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("oracle")


@pytest.fixture(scope="module", autouse=True)
def ray_session(oracle_dir):
    env = {"PYTHONPATH": ROOT, "JAX_COMPILATION_CACHE_DIR": os.environ["JAX_COMPILATION_CACHE_DIR"],
           "DUEL_CACHE": os.environ["DUEL_CACHE"], counting_oracle.ENV: str(oracle_dir)}
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": env})
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def config(tmp_path_factory):
    model = tiny_model_dir(tmp_path_factory.mktemp("policy") / "tiny")
    return tiny_config(model, **counting_oracle.oracle_config(**OVER))


@pytest.fixture(scope="module")
def generator_killed(tmp_path_factory, config, oracle_dir):
    """A run whose generator is SIGKILLed while step 3's generation is in flight."""
    run_dir = tmp_path_factory.mktemp("generator-killed")
    seen = {}

    def kill(loop, job):
        if job["step"] == 2:  # 0-based: the third step's generation was just submitted
            seen["old"] = loop.gen_pids[0]
            os.kill(loop.gen_pids[0], signal.SIGKILL)

    def after(loop, step):
        seen.setdefault("pids", []).append(loop.gen_pids[0])

    before = counting_oracle.pairs(oracle_dir)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        res = run_experiment(config, run_dir, hooks={"after_submit": kill, "after_step": after})
    seen.update(res=res, paid=counting_oracle.pairs(oracle_dir) - before, err=err.getvalue())
    return run_dir, seen


def test_generator_killed_mid_step_is_restarted_and_the_step_retried(generator_killed):
    run_dir, seen = generator_killed
    res = seen["res"]
    assert re.search(r"generator 0 restarted \(Actor\w+Error\); retrying step 2", seen["err"]), seen["err"]
    assert res["step"] == 4 and res["queries"] == QUERIES
    # Ray restarted the actor (a new process) after step 2; steps 3 and 4 ran on it
    old, pids = seen["old"], seen["pids"]
    assert pids[:2] == [old, old] and pids[2] == pids[3] != old
    # ledger count == query count == oracle calls; no duplicate pair ids, every step complete
    entries = Ledger(run_dir, readonly=True).entries()
    assert len(entries) == QUERIES == seen["paid"]
    assert len({e.pair_id for e in entries}) == QUERIES
    assert sorted(e.step for e in entries) == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
    assert [r["step"] for r in read_metrics(run_dir, "train")] == [1, 2, 3, 4]


def test_oracle_outage_checkpoints_stops_and_resume_finishes(tmp_path, config, oracle_dir,
                                                             generator_killed, capsys):
    run_dir = tmp_path / "outage"
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(to_dict(config)))
    down = oracle_dir / "down"
    start = counting_oracle.calls(oracle_dir)
    down.write_text(str(start + 2 * 8))  # answers 2 steps (8 pairs, 2 reward calls each), then down
    try:
        capsys.readouterr()
        assert cli.main(["run", str(tmp_path / "run.yaml"), "--run-dir", str(run_dir)]) == 3
        err = capsys.readouterr().err
    finally:
        down.unlink()  # the oracle recovers
    assert (f"duel: stopped: oracle unavailable: rule oracle (reward '{counting_oracle.REWARD}') "
            "failed 2 times in a row on pairs 0..3, past its retry budget (oracle.max_retries = 1); "
            "last error: OracleDown: test oracle is down") in err, err
    assert "checkpoint of step 2 saved (8 queries paid, all in the ledger)" in err
    assert f"resume with: duel resume {run_dir}" in err
    # stopped at step 3: checkpoint 2, the 8 paid labels, 2 metrics rows; no failed call paid
    assert all_steps(run_dir) == [2]
    assert counters(run_dir, 2)["queries"] == 8
    assert len(Ledger(run_dir, readonly=True)) == 8
    assert [r["step"] for r in read_metrics(run_dir, "train")] == [1, 2]
    assert counting_oracle.pairs(oracle_dir) - start // 2 == 8

    assert cli.main(["resume", str(run_dir)]) == 0
    assert f"steps: 4  queries: {QUERIES}" in capsys.readouterr().out
    assert counting_oracle.pairs(oracle_dir) - start // 2 == QUERIES  # none lost, none bought twice
    entries = Ledger(run_dir, readonly=True).entries()
    assert len({e.pair_id for e in entries}) == len(entries) == QUERIES
    # neither fault changed anything: this run and the generator-killed one are bit-identical
    killed = generator_killed[0]
    assert digests(run_dir, 4) == digests(killed, 4)
    assert counters(run_dir, 4) == counters(killed, 4)
    assert rows(run_dir) == rows(killed)
    assert ledger_rows(run_dir) == ledger_rows(killed)

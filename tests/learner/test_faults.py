"""Faults (issue 8): a generator or an oracle actor killed with SIGKILL mid-step; an oracle outage
past its retry budget, then `duel resume`; a disk that fills up while the learner writes the
ledger, then `duel resume`. None loses or re-buys a label that reached the ledger, and none
changes the result: the runs end bit-identical (checkpoint digests of every array, metrics, ledger)."""

import contextlib
import io
import os
import re
import signal

import pytest
import yaml

import learner.loop
from duel.checkpoint import all_steps
from duel.config import to_dict
from duel.ledger import Ledger
from duel.metrics import read_metrics
from launch import cli
from learner.loop import run_experiment
from tests.learner import counting_oracle, full_disk
from tests.learner.test_resume import counters, digests, ledger_rows, rows
from tests.learner.test_resume import oracle_dir, ray_session  # noqa: F401  (module fixtures: Ray with the counting oracle)
from tests.learner.tiny import tiny_config, tiny_model_dir


pytestmark = pytest.mark.slow

OVER = {"steps": 4, "checkpoint.every": 2, "checkpoint.keep": 3, "resources.generators": 1,
        "oracle.max_retries": 1, "eval.num_prompts": 4}
QUERIES = 16  # 4 steps x 4 prompts, all paid


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


def query_pids(oracle_dir, start: int) -> list[int]:
    """The pid of the process that answered each query reward call after the first `start`."""
    lines = [x for x in (oracle_dir / "calls").read_bytes().splitlines() if x.startswith(b"query")]
    return [int(x.split()[1]) for x in lines[start:]]


def test_oracle_killed_mid_step_is_restarted_and_the_step_retried(tmp_path, config, oracle_dir,
                                                                  generator_killed):
    run_dir = tmp_path / "oracle-killed"
    start = counting_oracle.calls(oracle_dir)
    # the oracle actor SIGKILLs itself inside step 3's label call, before answering any of it
    (oracle_dir / "kill").write_text(str(start + 2 * 8))
    res = run_experiment(config, run_dir)
    assert not (oracle_dir / "kill").exists()  # it did die
    assert res["step"] == 4 and res["queries"] == QUERIES
    # Ray restarted it (a new process) and the pool retried the step's chunk on it
    pids = query_pids(oracle_dir, start)
    assert len(pids) == 2 * QUERIES
    assert len(set(pids[:16])) == 1 and len(set(pids[16:])) == 1 and pids[16] != pids[0]
    # ledger count == query count == counted oracle calls; no duplicate pair ids
    entries = Ledger(run_dir, readonly=True).entries()
    assert len(entries) == QUERIES == (counting_oracle.calls(oracle_dir) - start) // 2
    assert len({e.pair_id for e in entries}) == QUERIES
    assert sorted(e.step for e in entries) == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
    # and the result is that of the run whose generator died (the fault changed nothing)
    killed = generator_killed[0]
    assert digests(run_dir, 4) == digests(killed, 4)
    assert ledger_rows(run_dir) == ledger_rows(killed)
    assert rows(run_dir) == rows(killed)


def test_ledger_disk_full_stops_cleanly_and_resume_finishes(tmp_path, config, oracle_dir,
                                                            generator_killed, capsys, monkeypatch):
    run_dir = tmp_path / "disk-full"
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(to_dict(config)))
    monkeypatch.setattr(learner.loop, "LearnerActor", full_disk.FullDiskLearnerActor)
    flag = oracle_dir / full_disk.FLAG
    start = counting_oracle.pairs(oracle_dir)
    flag.write_text("3")  # the 4th step's ledger append: half written, then ENOSPC
    try:
        capsys.readouterr()
        assert cli.main(["run", str(tmp_path / "run.yaml"), "--run-dir", str(run_dir)]) == 3
        err = capsys.readouterr().err
    finally:
        flag.unlink()  # space is freed
    segment = run_dir / "ledger" / "segment-00000.jsonl"
    stop = [x for x in err.splitlines() if x.startswith("duel: stopped:")]
    assert len(stop) == 1 and "Traceback" not in err and "RayTaskError" not in err, err
    assert stop[0] == (
        f"duel: stopped: ledger write failed at step 4: {segment}: writing 4 ledger entries failed "
        "(No space left on device); 12 earlier entries are intact. Free disk space and resume the "
        "run; the 4 oracle answers of this step were not used and will be asked again; no "
        "checkpoint written, resume restarts from checkpoint step 2 and reuses the labels already "
        "in the ledger"), err
    assert f"resume with: duel resume {run_dir}" in err
    # the torn half-batch was rolled back: 3 steps of entries, every line whole
    entries = Ledger(run_dir, readonly=True).entries()
    assert sorted(e.step for e in entries) == [0] * 4 + [1] * 4 + [2] * 4
    assert segment.read_bytes().endswith(b"\n")
    assert ledger_rows(run_dir) == ledger_rows(generator_killed[0])[:12]
    # the failed step's labels were never used: no 4th metrics row, checkpoint 2 untouched
    assert all_steps(run_dir) == [2]
    assert digests(run_dir, 2) == digests(generator_killed[0], 2)
    assert [r["step"] for r in read_metrics(run_dir, "train")] == [1, 2, 3]
    assert counting_oracle.pairs(oracle_dir) - start == 16  # 4 steps asked, the 4th not stored

    assert cli.main(["resume", str(run_dir)]) == 0
    assert f"steps: 4  queries: {QUERIES}" in capsys.readouterr().out
    # step 3 came from the ledger (not paid again); step 4's 4 answers never reached the ledger,
    # so exactly those 4 were asked again: 16 + 4 oracle calls for 16 queries
    assert counting_oracle.pairs(oracle_dir) - start == QUERIES + 4
    c = counters(run_dir, 4)
    assert (c["queries"], c["reused"]) == (QUERIES, 4)
    entries = Ledger(run_dir, readonly=True).entries()
    assert len({e.pair_id for e in entries}) == len(entries) == QUERIES
    killed = generator_killed[0]
    assert digests(run_dir, 4) == digests(killed, 4)
    assert ledger_rows(run_dir) == ledger_rows(killed)
    assert rows(run_dir) == rows(killed)


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

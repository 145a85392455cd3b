"""Faults (issue 8): a generator or an oracle actor killed with SIGKILL mid-step; an oracle outage
past its retry budget, then `duel resume`; a disk that fills up while the learner writes the
ledger or a checkpoint, then `duel resume`. None loses or re-buys a label that reached the
driver (only an oracle call in flight when its actor died is asked again, and it is counted),
and none changes the result: the runs end bit-identical (checkpoint digests of every array,
metrics, ledger)."""

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
from tests.helpers import counting_oracle, full_disk
from tests.helpers.run_dirs import counters, digests, ledger_rows, rows
from tests.helpers.tiny import tiny_config, tiny_model_dir


pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("counting_ray")]  # tests/conftest.py

OVER = {"steps": 4, "checkpoint.every": 2, "checkpoint.keep": 3, "resources.generators": 1,
        "oracle.max_retries": 1, "eval.num_prompts": 4}
QUERIES = 16  # 4 steps x 4 prompts, all paid


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("policy") / "tiny")


@pytest.fixture(scope="module")
def config(model):
    return tiny_config(model, **counting_oracle.oracle_config(**OVER))


@pytest.fixture(scope="module")
def generator_killed(tmp_path_factory, config, oracle_dir):
    """A run whose generator is SIGKILLed while step 3's generation is in flight."""
    run_dir = tmp_path_factory.mktemp("generator-killed")
    seen = {}

    def kill(loop, job):
        if job.step == 2:  # 0-based: the third step's generation was just submitted
            # with the weights it samples with: sent with the learner's update (the loop's
            # pipeline), the call leaves for the generator once the update returned them; a
            # generator that died before that would simply take it after its restart
            ray.wait([loop.refs[job.version]], fetch_local=False)
            seen["old"] = loop.gen_pids[0]
            os.kill(loop.gen_pids[0], signal.SIGKILL)

    def after(loop, step):
        seen.setdefault("pids", []).append(loop.gen_pids[0])

    before = counting_oracle.calls(oracle_dir)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        res = run_experiment(config, run_dir, hooks={"after_submit": kill, "after_step": after})
    calls = counting_oracle.query_calls(oracle_dir, before)
    seen.update(res=res, paid=len(calls) // 2, err=err.getvalue(), calls=[k for _, k in calls])
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


def test_oracle_killed_mid_step_loses_only_the_call_in_flight(tmp_path, config, oracle_dir,
                                                              generator_killed):
    run_dir = tmp_path / "oracle-killed"
    start = counting_oracle.calls(oracle_dir)
    # the oracle actor SIGKILLs itself inside step 3's label call: pairs 0 and 1 answered (2
    # reward calls each), pair 2's reward call for response a answered, its call for b kills it
    in_flight = 2 * 8 + 2 * 2
    (oracle_dir / "kill").write_text(str(start + in_flight + 1))
    res = run_experiment(config, run_dir)
    assert not (oracle_dir / "kill").exists()  # it did die
    assert res["step"] == 4 and res["queries"] == QUERIES
    calls = counting_oracle.query_calls(oracle_dir, start)
    # oracle calls == answers in the ledger (2 reward calls each) + the 1 call in flight
    assert len(calls) == 2 * QUERIES + 1
    entries = Ledger(run_dir, readonly=True).entries()
    assert len(entries) == QUERIES and len({e.pair_id for e in entries}) == QUERIES
    assert sorted(e.step for e in entries) == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 4
    # Ray restarted it (a new process), which went on from the call in flight: in order, the
    # calls are those of a run without the fault with exactly that one call asked twice
    pids = [pid for pid, _ in calls]
    cut = in_flight + 1
    assert len(set(pids[:cut])) == 1 and len(set(pids[cut:])) == 1 and pids[cut] != pids[0]
    ref = generator_killed[1]["calls"]
    assert [k for _, k in calls] == ref[:cut] + ref[in_flight:]
    e = [x for x in entries if x.step == 2][2]  # the pair in flight: step 3, third pair
    assert ref[in_flight] == counting_oracle.call_key(e.prompt, e.response_a)
    # and the result is that of the run whose generator died (the fault changed nothing)
    killed = generator_killed[0]
    assert digests(run_dir, 4) == digests(killed, 4)
    assert ledger_rows(run_dir) == ledger_rows(killed)
    assert rows(run_dir) == rows(killed)


def test_ledger_disk_full_stops_cleanly_and_resume_finishes(tmp_path, config, oracle_dir,
                                                            generator_killed, capsys, monkeypatch):
    run_dir = tmp_path / "disk-full"
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(to_dict(config)))
    full_disk.install(monkeypatch)
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


def test_ledger_disk_full_with_the_next_generation_in_flight(tmp_path, config, oracle_dir,
                                                            generator_killed, capsys, monkeypatch):
    """The ledger fails at step 2 while step 3's generation, sent with that update (the loop's
    pipeline), waits for its weights: the run stops with the ledger message alone (that
    generation fails with the update and is dropped), and resume ends as the run without the fault."""
    run_dir = tmp_path / "disk-full-early"
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(to_dict(config)))
    full_disk.install(monkeypatch)
    flag = oracle_dir / full_disk.FLAG
    flag.write_text("1")  # the 2nd step's ledger append
    try:
        capsys.readouterr()
        assert cli.main(["run", str(tmp_path / "run.yaml"), "--run-dir", str(run_dir)]) == 3
        err = capsys.readouterr().err
    finally:
        flag.unlink()
    stop = [x for x in err.splitlines() if x.startswith("duel: stopped:")]
    assert len(stop) == 1 and stop[0].startswith("duel: stopped: ledger write failed at step 2: "), err
    assert "Traceback" not in err and "RayTaskError" not in err, err
    assert sorted(e.step for e in Ledger(run_dir, readonly=True).entries()) == [0] * 4
    assert [r["step"] for r in read_metrics(run_dir, "train")] == [1]

    assert cli.main(["resume", str(run_dir)]) == 0
    assert f"steps: 4  queries: {QUERIES}" in capsys.readouterr().out
    killed = generator_killed[0]
    assert digests(run_dir, 4) == digests(killed, 4)
    assert ledger_rows(run_dir) == ledger_rows(killed)
    assert rows(run_dir) == rows(killed)


def test_checkpoint_disk_full_stops_cleanly_and_resume_finishes(tmp_path, model, oracle_dir,
                                                               generator_killed, capsys, monkeypatch):
    run_dir = tmp_path / "checkpoint-full"
    # keep 1: a save that deleted the older checkpoint before the new one is complete loses both
    config = tiny_config(model, **counting_oracle.oracle_config(**{**OVER, "checkpoint.keep": 1}))
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(to_dict(config)))
    full_disk.install(monkeypatch)
    flag = oracle_dir / full_disk.CHECKPOINT_FLAG
    start = counting_oracle.calls(oracle_dir)
    flag.write_text("4")  # the last checkpoint: arrays written, metadata half written, ENOSPC
    try:
        capsys.readouterr()
        assert cli.main(["run", str(tmp_path / "run.yaml"), "--run-dir", str(run_dir)]) == 3
        err = capsys.readouterr().err
    finally:
        flag.unlink()  # space is freed
    ckpt = run_dir / "checkpoints"
    stop = [x for x in err.splitlines() if x.startswith("duel: stopped:")]
    assert len(stop) == 1 and "Traceback" not in err and "RayTaskError" not in err, err
    assert stop[0] == (
        f"duel: stopped: checkpoint write failed: {ckpt / '4'}: writing checkpoint step 4 failed "
        "(No space left on device); its partial files were removed, checkpoints [2] are intact; "
        f"the ledger holds all {QUERIES} labels paid. Free disk space and resume the run: it "
        "restarts from checkpoint step 2 and reuses the labels in the ledger"), err
    assert f"resume with: duel resume {run_dir}" in err
    # no temporary directory left; checkpoint 2 and the ledger (all 4 steps) untouched
    assert sorted(p.name for p in ckpt.iterdir()) == ["2"]
    killed = generator_killed[0]
    assert digests(run_dir, 2) == digests(killed, 2)
    assert ledger_rows(run_dir) == ledger_rows(killed)
    assert counting_oracle.calls(oracle_dir) - start == 2 * QUERIES

    assert cli.main(["resume", str(run_dir)]) == 0
    assert f"steps: 4  queries: {QUERIES}" in capsys.readouterr().out
    # steps 3 and 4 came from the ledger: oracle calls == ledger entries, none paid twice
    assert counting_oracle.calls(oracle_dir) - start == 2 * QUERIES
    c = counters(run_dir, 4)
    assert (c["queries"], c["reused"]) == (QUERIES, 8)
    assert all_steps(run_dir) == [4]
    assert digests(run_dir, 4) == digests(killed, 4)
    assert ledger_rows(run_dir) == ledger_rows(killed)
    assert rows(run_dir) == rows(killed)


def test_oracle_outage_mid_step_keeps_the_answers_checkpoints_and_resume_finishes(
        tmp_path, config, oracle_dir, generator_killed, capsys):
    run_dir = tmp_path / "outage"
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(to_dict(config)))
    down = oracle_dir / "down"
    start = counting_oracle.calls(oracle_dir)
    # answers 2 steps and 2 pairs of step 3 (2 reward calls per pair), then is down
    down.write_text(str(start + 2 * (8 + 2)))
    try:
        capsys.readouterr()
        assert cli.main(["run", str(tmp_path / "run.yaml"), "--run-dir", str(run_dir)]) == 3
        err = capsys.readouterr().err
    finally:
        down.unlink()  # the oracle recovers
    assert (f"duel: stopped: oracle unavailable: rule oracle (reward '{counting_oracle.REWARD}') "
            "failed 2 times in a row on pairs 2..3, past its retry budget (oracle.max_retries = 1); "
            "last error: OracleDown: test oracle is down") in err, err
    assert ("checkpoint of step 2 saved (8 queries paid, all in the ledger); the 2 answers of step 3 "
            "received before it gave up are in the ledger too") in err, err
    assert f"resume with: duel resume {run_dir}" in err
    # stopped at step 3: checkpoint 2, 2 metrics rows; the ledger holds the 8 labels learned from
    # and the 2 answers of step 3 (paid, not yet used); no failed call paid
    assert all_steps(run_dir) == [2]
    assert counters(run_dir, 2)["queries"] == 8
    killed = generator_killed[0]
    assert ledger_rows(run_dir) == ledger_rows(killed)[:10]
    assert [r["step"] for r in read_metrics(run_dir, "train")] == [1, 2]
    assert counting_oracle.calls(oracle_dir) - start == 2 * 10

    assert cli.main(["resume", str(run_dir)]) == 0
    assert f"steps: 4  queries: {QUERIES}" in capsys.readouterr().out
    # step 3's 2 answers came from the ledger: oracle calls == ledger entries, none bought twice
    assert counting_oracle.calls(oracle_dir) - start == 2 * QUERIES
    entries = Ledger(run_dir, readonly=True).entries()
    assert len({e.pair_id for e in entries}) == len(entries) == QUERIES
    # neither fault changed anything: this run and the generator-killed one are bit-identical
    assert digests(run_dir, 4) == digests(killed, 4)
    c = counters(run_dir, 4)
    assert c["reused"] == 2 and {**c, "reused": 0} == counters(killed, 4)
    assert rows(run_dir) == rows(killed)
    assert ledger_rows(run_dir) == ledger_rows(killed)

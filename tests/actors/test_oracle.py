"""The oracle pool: bounded concurrency, one query per pair, retries, failures never become labels,
an actor that dies mid-chunk loses only the call in flight."""

from collections import Counter

import numpy as np
import pytest
import ray

from actors.oracle import OracleActor, OraclePool, OracleSpec, OracleUnavailable, call_size, check_reply
from duel.oracles import make_oracle
from duel.oracles.base import bt_prob
from tests.helpers import counting_oracle
from tests.helpers.fake_http import FakeServer
from tests.helpers.tiny import TinyTask

pytestmark = pytest.mark.usefixtures("counting_ray")  # tests/conftest.py: Ray with the counting oracle


@ray.remote(num_cpus=0)
class Flaky:
    """Answers P(a > b) = len(a) / (len(a) + len(b)), one pair per yield as OracleActor does;
    its first `fail` calls fail before answering anything."""

    def __init__(self, fail: int = 0):
        self.fail, self.calls, self.pairs, self.inflight, self.peak = fail, 0, 0, 0, 0

    @ray.method(num_returns="streaming", _generator_backpressure_num_objects=1)
    async def label(self, prompts, a, b):
        import asyncio

        self.calls += 1
        self.inflight += 1
        self.peak = max(self.peak, self.inflight)
        try:
            await asyncio.sleep(0.05)
            if self.fail > 0:
                self.fail -= 1
                raise RuntimeError("oracle down")
            for i, (x, y) in enumerate(zip(a, b)):
                self.pairs += 1
                yield i, np.array([len(x) / (len(x) + len(y))], np.float32), [{"latency_s": 0.05}], False
        finally:
            self.inflight -= 1

    def stats(self):
        return self.calls, self.pairs, self.peak


def test_pool_labels_every_pair_once_with_bounded_concurrency():
    actors = [Flaky.remote() for _ in range(2)]
    pool = OraclePool(actors, max_concurrency=2, chunk_size=3, max_retries=0)
    a = ["x" * i for i in range(1, 11)]
    b = ["yy"] * 10
    prob, meta = pool.label(["p"] * 10, a, b)
    np.testing.assert_allclose(prob, [i / (i + 2) for i in range(1, 11)], rtol=1e-6)
    assert pool.queries == 10
    stats = ray.get([x.stats.remote() for x in actors])
    assert sum(s[1] for s in stats) == 10  # pairs labelled: each exactly once
    assert sum(s[0] for s in stats) == 4  # ceil(10 / 3) chunks
    assert max(s[2] for s in stats) <= 2
    assert all(m["retries"] == 0 and m["latency_s"] == 0.05 for m in meta)


def test_pool_retries_then_succeeds():
    actor = Flaky.remote(fail=2)
    pool = OraclePool([actor], max_concurrency=1, chunk_size=8, max_retries=2, backoff_s=0.01)
    prob, meta = pool.label(["p"] * 3, ["a", "aa", "aaa"], ["b", "b", "b"])
    np.testing.assert_allclose(prob, [0.5, 2 / 3, 0.75], rtol=1e-6)
    assert [m["retries"] for m in meta] == [2, 0, 0]  # failures in a row before each answer
    assert pool.queries == 3
    assert ray.get(actor.stats.remote())[:2] == (3, 3)


def test_pool_gives_up_past_retry_budget_and_returns_no_labels():
    pool = OraclePool([Flaky.remote(fail=5)], max_concurrency=1, max_retries=1, backoff_s=0.01)
    with pytest.raises(OracleUnavailable, match="failed 2 times"):
        pool.label(["p"], ["a"], ["b"])
    assert pool.queries == 0


def test_check_reply_rejects_wrong_shapes_and_values():
    np.testing.assert_array_equal(check_reply([0.0, 1.0], 2), [0.0, 1.0])
    assert np.isnan(check_reply([np.nan], 1)[0])  # a skipped pair stays nan, never a made-up label
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        check_reply([0.5, 0.5], 3)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        check_reply([1.5], 1)


def test_oracle_actor_counts_pairs_and_uses_the_task_reward():
    actor = OracleActor.remote(OracleSpec("task", {"tau": 0.0}, "arithmetic"))
    pool = OraclePool([actor], max_concurrency=1)
    prob, _ = pool.label(["2+3=", "2+3=", "10+10="], ["5", "7", "21"], ["6", "5", "20"])
    np.testing.assert_array_equal(prob, [1.0, 0.0, 0.0])  # closer to the sum wins
    assert pool.num_calls() == 3 == pool.queries


@pytest.mark.parametrize("lost", [0, 1])
def test_actor_killed_mid_chunk_keeps_every_answer_it_sent(oracle_dir, lost):
    """The actor SIGKILLs itself inside pair J's oracle call: before its first reward call
    (lost = 0: pairs 0..J-1 were answered and must all arrive) or between its two reward calls
    (lost = 1: one reward call, response a of pair J, was in flight and is paid again)."""
    n, j = 6, 3
    prompts = [f"{i}+{i}=" for i in range(n)]
    a = [str(2 * i) for i in range(n)]
    b = [str(2 * i + 1) for i in range(n)]
    start = counting_oracle.calls(oracle_dir)
    (oracle_dir / "kill").write_text(str(start + 2 * j + lost))
    actor = OracleActor.remote(OracleSpec("rule", counting_oracle.oracle_config()["oracle.options"]))
    pool = OraclePool([actor], max_concurrency=1, chunk_size=n, backoff_s=0.2)
    prob, meta = pool.label(prompts, a, b)
    assert not (oracle_dir / "kill").exists()  # it did die
    gold = TinyTask().gold_reward
    want = bt_prob([gold(p, x) for p, x in zip(prompts, a)], [gold(p, y) for p, y in zip(prompts, b)])
    np.testing.assert_array_equal(prob, want)
    assert pool.queries == n and [m["retries"] for m in meta] == [0] * n
    calls = counting_oracle.query_calls(oracle_dir, start)
    # oracle calls == answers (2 reward calls per pair) + the call in flight when it died
    assert len(calls) == 2 * n + lost
    pids = [pid for pid, _ in calls]
    cut = 2 * j + lost
    assert len(set(pids[:cut])) == 1 and len(set(pids[cut:])) == 1 and pids[0] != pids[cut]
    # the only call asked twice is the one in flight; every answer before it arrived
    twice = [k for k, c in Counter(k for _, k in calls).items() if c > 1]
    assert twice == ([counting_oracle.call_key(prompts[j], a[j])] if lost else [])
    ray.kill(actor)


def test_call_size_is_what_the_oracle_is_paid_for_at_once():
    def size(cfg, configured=None):
        return call_size(make_oracle(cfg, task=TinyTask()), configured)

    assert size({"kind": "remote", "url": "http://judge.invalid", "batch_size": 8}) == 8  # a request
    assert size({"kind": "judge", "base_url": "http://judge.invalid", "model": "m", "concurrency": 3}) == 3
    assert size({"kind": "human"}) == 1
    assert size({"kind": "task"}) == 0  # simulated: the whole chunk in one call
    assert size({"kind": "task", "call_size": 1}, 1) == 1
    with pytest.raises(ValueError, match="key 'call_size' must be an integer >= 0"):
        size({"kind": "task"}, -1)


def test_bad_call_size_stops_at_once_naming_the_key():
    pool = OraclePool([OracleActor.remote(OracleSpec("task", {"call_size": -1}, "arithmetic"))], backoff_s=0.01)
    with pytest.raises(OracleUnavailable, match=r"could not start: ValueError: oracle config: key "
                                                r"'call_size' must be an integer >= 0.*got -1"):
        pool.label(["1+1="], ["2"], ["3"])
    assert pool.queries == 0


@pytest.mark.parametrize("fails", [2, 3, 100])
def test_http_oracle_and_pool_share_one_retry_budget(fails):
    """oracle.max_retries = 2: a request is sent at most 3 times in all (the HTTP client retries
    it; the pool counts those attempts instead of sending the call again: 3, not 3 x 3 = 9).
    A server failing 2 times answers on the 3rd request; failing 3 times or more stops the run."""
    srv = FakeServer(lambda i, body: (503, {}, 0) if i < fails else (200, {"prob_a": [0.75]}, 0))
    try:
        spec = OracleSpec("remote", {"url": srv.url, "backoff_s": 0.0}, max_retries=2)
        pool = OraclePool([OracleActor.remote(spec)], max_concurrency=1, max_retries=2, backoff_s=0.0)
        if fails <= 2:
            prob, _ = pool.label(["p"], ["a"], ["b"])
            assert prob.tolist() == [0.75] and pool.queries == 1
        else:
            with pytest.raises(OracleUnavailable, match=r"failed 3 times in a row on pairs 0\.\.0, past its "
                                                        r"retry budget \(oracle\.max_retries = 2\).*3 attempts"):
                pool.label(["p"], ["a"], ["b"])
            assert pool.queries == 0
        assert len(srv.requests) == 3
    finally:
        srv.close()


def test_http_client_error_is_not_retried_by_the_pool():
    srv = FakeServer(lambda i, body: (401, {"error": "bad key"}, 0))
    try:
        spec = OracleSpec("remote", {"url": srv.url, "backoff_s": 0.0}, max_retries=3)
        pool = OraclePool([OracleActor.remote(spec)], max_concurrency=1, max_retries=3, backoff_s=0.0)
        with pytest.raises(OracleUnavailable, match="failed 1 times in a row on pairs 0..0, with an error "
                                                    "that is not retried; last error: OracleError: .*HTTP 401"):
            pool.label(["p"], ["a"], ["b"])
        assert len(srv.requests) == 1
    finally:
        srv.close()

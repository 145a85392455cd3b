"""The oracle pool: bounded concurrency, one query per pair, retries, failures never become labels."""

import numpy as np
import pytest
import ray

from actors.oracle import OracleActor, OraclePool, OracleUnavailable, check_reply


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@ray.remote(num_cpus=0)
class Flaky:
    """Answers P(a > b) = len(a) / (len(a) + len(b)); fails its first `fail` calls."""

    def __init__(self, fail: int = 0):
        self.fail, self.calls, self.pairs, self.inflight, self.peak = fail, 0, 0, 0, 0

    async def label(self, prompts, a, b):
        import asyncio

        self.calls += 1
        self.inflight += 1
        self.peak = max(self.peak, self.inflight)
        await asyncio.sleep(0.05)
        self.inflight -= 1
        if self.fail > 0:
            self.fail -= 1
            raise RuntimeError("oracle down")
        self.pairs += len(prompts)
        p = np.array([len(x) / (len(x) + len(y)) for x, y in zip(a, b)], np.float32)
        return p, [{"latency_s": 0.05} for _ in prompts], False

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
    assert [m["retries"] for m in meta] == [2, 2, 2]
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
    actor = OracleActor.remote({"kind": "task", "tau": 0.0}, "arithmetic")
    pool = OraclePool([actor], max_concurrency=1)
    prob, _ = pool.label(["2+3=", "2+3=", "10+10="], ["5", "7", "21"], ["6", "5", "20"])
    np.testing.assert_array_equal(prob, [1.0, 0.0, 0.0])  # closer to the sum wins
    assert pool.num_calls() == 3 == pool.queries

"""Oracles: label sampling statistics, rule, human, remote (HTTP faults) and judge (position swap)."""

from __future__ import annotations

import io
import json
import math
import pickle
import re

import numpy as np
import pytest

from duel.oracles import OracleError, make_oracle, register_reward, sample_labels
from tests.helpers.fake_http import FakeServer


# ----------------------------------------------------------------------------- sampling


def test_bt_sampling_frequency_matches_sigmoid():
    """P(label = 1) = sigmoid((r_a - r_b)/tau). Tolerance: 4 binomial standard errors per value."""

    @register_reward("test_identity")
    def identity(prompt, response):
        return float(response)

    tau = 0.7
    deltas = np.array([-2.0, -0.5, 0.0, 0.3, 1.0, 3.0])
    oracle = make_oracle({"kind": "rule", "reward": "test_identity", "tau": tau})
    res = oracle.label(["x"] * 6, [str(d) for d in deltas], ["0"] * 6)
    expected = 1.0 / (1.0 + np.exp(-deltas / tau))
    np.testing.assert_allclose(res.prob_a, expected, rtol=1e-6)
    n = 20000
    rng = np.random.default_rng(0)
    labels = np.stack([sample_labels(res.prob_a, rng, mode="bt") for _ in range(n)])
    assert labels.dtype == np.int8
    freq = labels.mean(0)
    tol = 4 * np.sqrt(expected * (1 - expected) / n)
    assert np.all(np.abs(freq - expected) <= tol), (freq, expected, tol)
    assert [m["reward_a"] for m in res.metadata] == pytest.approx(deltas.tolist())


def test_threshold_and_flip():
    rng = np.random.default_rng(1)
    p = np.array([0.9, 0.1, 0.5, 0.51])
    n = 20000
    lab = np.stack([sample_labels(p, rng, mode="threshold") for _ in range(n)]).mean(0)
    assert lab[0] == 1 and lab[1] == 0 and lab[3] == 1
    assert abs(lab[2] - 0.5) < 4 * 0.5 / math.sqrt(n)  # exact ties: a fair coin
    flipped = np.stack([sample_labels(p[:2], rng, mode="threshold", flip=0.2) for _ in range(n)]).mean(0)
    np.testing.assert_allclose(flipped, [0.8, 0.2], atol=4 * math.sqrt(0.16 / n))
    with pytest.raises(ValueError, match="nan"):
        sample_labels(np.array([np.nan]), rng)
    with pytest.raises(ValueError, match="mode"):
        sample_labels(p, rng, mode="soft")


def test_rule_oracle_tau_zero_and_pickle():
    register_reward("test_length")(lambda prompt, response: float(len(response)))
    oracle = make_oracle({"kind": "rule", "reward": "test_length", "tau": 0.0})
    res = oracle.label(["p"] * 3, ["aaa", "a", "aa"], ["a", "aaa", "bb"])
    np.testing.assert_array_equal(res.prob_a, [1.0, 0.0, 0.5])
    # "module:function" form, pickled (names only) and re-resolved
    oracle = make_oracle({"kind": "rule", "reward": "duel.tasks.arithmetic:arithmetic_reward", "tau": 0.0})
    clone = pickle.loads(pickle.dumps(oracle))
    res = clone.label(["17+25="] * 2, ["42", "43"], ["43", "x"])
    np.testing.assert_array_equal(res.prob_a, [1.0, 1.0])
    assert [m["reward_a"] for m in res.metadata] == pytest.approx([5.0, 2.7])


def test_rule_oracle_takes_a_reward_function_and_kind_task_the_tasks_gold_reward():
    from duel.oracles import ORACLES
    from duel.oracles.rule import RuleOracle

    class Gold:  # anything with gold_reward: the oracle knows no task class
        def gold_reward(self, prompt, response):
            return float(len(response) - len(prompt))

    oracle = make_oracle({"kind": "task", "tau": 0.0}, task=Gold())
    assert isinstance(oracle, RuleOracle) and oracle.kind == "rule"
    np.testing.assert_array_equal(oracle.label(["pp"] * 3, ["aaa", "a", "aa"], ["a", "aaa", "bb"]).prob_a,
                                  [1.0, 0.0, 0.5])
    # a "reward" key wins over the task's gold reward; a function works directly
    assert make_oracle({"kind": "rule", "reward": "test_length"}, task=Gold()).reward == "test_length"
    res = RuleOracle(lambda p, r: 2.0 * float(r), tau=2.0).label(["x"], ["1"], ["0"])
    np.testing.assert_allclose(res.prob_a, [1.0 / (1.0 + np.exp(-1.0))], rtol=1e-6)
    with pytest.raises(ValueError, match="kind 'task' needs a task"):
        make_oracle({"kind": "task"})
    # one explicit table; the shipped tasks register no reward names with the oracle
    assert sorted(ORACLES) == ["human", "judge", "remote", "reward_model", "rule"]
    assert all(cls.kind == kind for kind, cls in ORACLES.items())
    with pytest.raises(ValueError, match="registered name.*'arithmetic'.*oracle kind 'task'"):
        make_oracle({"kind": "rule", "reward": "arithmetic"}).label(["1+1="], ["2"], ["3"])


def test_make_oracle_errors():
    with pytest.raises(ValueError, match="'kind'"):
        make_oracle({"kind": "oracle9000"})
    with pytest.raises(ValueError, match="unknown keys.*'rewrad'"):
        make_oracle({"kind": "rule", "rewrad": "x"})
    with pytest.raises(ValueError, match="'url'"):
        make_oracle({"kind": "remote", "url": "ftp://x"})
    with pytest.raises(ValueError, match="registered name"):
        make_oracle({"kind": "rule", "reward": "no_such_reward"}).label(["p"], ["a"], ["b"])
    oracle = make_oracle({"kind": "rule", "reward": "test_identity"})
    with pytest.raises(ValueError, match="equal lengths"):
        oracle.label(["p"], ["1", "2"], ["0"])


# ----------------------------------------------------------------------------- human


def test_human_oracle_answers_skip_quit():
    stdin = io.StringIO("1\nbogus\n2\nt\ns\nq\n")
    stdout = io.StringIO()
    oracle = make_oracle({"kind": "human", "shuffle": False}, stdin=stdin, stdout=stdout)
    res = oracle.label([f"prompt {i}" for i in range(7)], [f"A{i}" for i in range(7)], [f"B{i}" for i in range(7)])
    np.testing.assert_array_equal(res.prob_a[:3], [1.0, 0.0, 0.5])
    assert np.isnan(res.prob_a[3:]).all()
    assert res.stop and res.answered.tolist() == [True] * 3 + [False] * 4
    assert res.metadata[1]["retries"] == 1  # "bogus" asked again
    assert res.metadata[3]["skipped"] and not res.metadata[3].get("quit")
    assert res.metadata[4]["quit"] and res.metadata[6]["quit"]
    text = stdout.getvalue()
    assert "prompt 0" in text and "A0" in text and "B0" in text and "prompt 5" not in text
    # shuffled display maps answers back: always answering "1" = whichever was shown first
    oracle = make_oracle({"kind": "human", "seed": 3}, stdin=io.StringIO("1\n" * 200), stdout=io.StringIO())
    res = oracle.label(["p"] * 200, ["a"] * 200, ["b"] * 200)
    swapped = np.array([m["swapped"] for m in res.metadata])
    np.testing.assert_array_equal(res.prob_a, np.where(swapped, 0.0, 1.0))
    assert 60 < swapped.sum() < 140
    pickle.dumps(oracle)  # streams are dropped


# ----------------------------------------------------------------------------- remote


def by_length(body):
    return [0.9 if len(p["response_a"]) > len(p["response_b"]) else 0.1 for p in body["pairs"]]


def test_remote_retries_timeouts_500_malformed_and_counts_them():
    script = ["timeout", "500", "malformed", "ok", "ok"]

    def respond(i, body):
        kind = script[i] if i < len(script) else "ok"
        if kind == "timeout":
            return 200, {"prob_a": by_length(body)}, 0.6  # answered too late: must not be used
        if kind == "500":
            return 500, {"error": "boom"}, 0
        if kind == "malformed":
            return 200, b'{"prob_a": [0.5,', 0
        return 200, {"prob_a": by_length(body)}, 0

    srv = FakeServer(respond)
    try:
        oracle = make_oracle({"kind": "remote", "url": srv.url + "/label", "timeout_s": 0.3,
                              "max_retries": 3, "backoff_s": 0.01, "batch_size": 2})
        res = oracle.label(["p"] * 3, ["long", "s", "longer"], ["s", "long", "x"])
        np.testing.assert_allclose(res.prob_a, [0.9, 0.1, 0.9])
        assert [m["retries"] for m in res.metadata] == [3, 3, 0]
        assert res.metadata[0]["errors"] == ["timeout", "http_500", "malformed_json"]
        assert [m["request"] for m in res.metadata] == [0, 0, 1]
        assert res.metadata[0]["latency_s"] >= 0.3  # the timeout is part of the latency
        assert len(srv.requests) == 5
        assert srv.requests[0]["body"] == {"pairs": [
            {"prompt": "p", "response_a": "long", "response_b": "s"},
            {"prompt": "p", "response_a": "s", "response_b": "long"}]}
    finally:
        srv.close()


def test_remote_budget_exhausted_raises_and_never_labels():
    def respond(i, body):
        return [(500, {}, 0), (200, {"prob_a": [2.0]}, 0), (200, {"p": [0.5]}, 0)][i % 3]

    srv = FakeServer(respond)
    try:
        oracle = make_oracle({"kind": "remote", "url": srv.url, "max_retries": 2, "backoff_s": 0.0})
        with pytest.raises(OracleError, match=r"3 attempts.*http_500.*malformed_json.*malformed_json"):
            oracle.label(["p"], ["a"], ["b"])
        assert len(srv.requests) == 3
    finally:
        srv.close()


def test_remote_client_error_not_retried_and_key_not_leaked(monkeypatch):
    monkeypatch.setenv("DUEL_TEST_KEY", "sk-secret-123")
    calls = []

    def respond(i, body):
        calls.append(i)
        return (401, {"error": "bad key"}, 0) if i == 0 else (200, {"prob_a": [0.25]}, 0)

    srv = FakeServer(respond)
    try:
        cfg = {"kind": "remote", "url": srv.url, "api_key_env": "DUEL_TEST_KEY", "backoff_s": 0.0}
        oracle = make_oracle(cfg)
        with pytest.raises(OracleError, match="HTTP 401") as err:
            oracle.label(["p"], ["a"], ["b"])
        assert "sk-secret" not in str(err.value) and len(calls) == 1
        res = oracle.label(["p"], ["a"], ["b"])
        assert res.prob_a[0] == pytest.approx(0.25)
        assert srv.requests[-1]["auth"] == "Bearer sk-secret-123"
        blob = repr(oracle) + json.dumps(res.metadata) + pickle.dumps(oracle).decode("latin1")
        assert "sk-secret" not in blob
    finally:
        srv.close()
    monkeypatch.delenv("DUEL_TEST_KEY")
    with pytest.raises(OracleError, match="DUEL_TEST_KEY"):
        make_oracle(cfg).label(["p"], ["a"], ["b"])


# ----------------------------------------------------------------------------- judge


def _shown(body):
    user = body["messages"][-1]["content"]
    first = re.search(r"\[Response A\]\n(.*?)\n\n\[Response B\]", user, re.S).group(1)
    second = re.search(r"\[Response B\]\n(.*?)\n\n", user, re.S).group(1)
    return first, second


def chat_reply(content):
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}


def test_judge_asks_both_orders_and_cancels_position_bias(monkeypatch):
    monkeypatch.setenv("DUEL_JUDGE_KEY", "sk-judge-456")

    def respond(i, body):
        first, second = _shown(body)
        if "biased" in first or "biased" in second:
            return 200, chat_reply("A"), 0  # always the first shown
        if i == 0:
            return 200, chat_reply("Hmm, hard to say"), 0  # malformed verdict: retried
        return 200, chat_reply("B." if len(second) > len(first) else "Response A"), 0

    srv = FakeServer(respond)
    try:
        oracle = make_oracle({"kind": "judge", "base_url": srv.url + "/v1", "model": "judge-1",
                              "api_key_env": "DUEL_JUDGE_KEY", "backoff_s": 0.0, "concurrency": 1})
        res = oracle.label(["q1", "q2", "q3"], ["a longer answer", "x", "biased one"], ["short", "a longer one", "biased two"])
        np.testing.assert_allclose(res.prob_a, [1.0, 0.0, 0.5])
        m = res.metadata
        assert (m[0]["verdict_ab"], m[0]["verdict_ba"], m[0]["consistent"]) == ("a", "b", True)
        assert (m[2]["verdict_ab"], m[2]["verdict_ba"], m[2]["consistent"]) == ("a", "a", False)
        assert m[0]["retries"] == 1 and m[0]["errors"] == ["malformed_json"] and m[1]["retries"] == 0
        assert len(srv.requests) == 7  # 3 pairs x 2 orders + 1 retry
        assert all(r["path"] == "/v1/chat/completions" for r in srv.requests)
        assert all(r["auth"] == "Bearer sk-judge-456" for r in srv.requests)
        assert srv.requests[0]["body"]["model"] == "judge-1"
        # the swap: the second request of a pair shows b first
        assert _shown(srv.requests[1]["body"]) == ("a longer answer", "short")
        assert _shown(srv.requests[2]["body"]) == ("short", "a longer answer")
        assert "sk-judge" not in repr(oracle) + json.dumps(m) + pickle.dumps(oracle).decode("latin1")
    finally:
        srv.close()


def test_judge_single_order_and_failure():
    srv = FakeServer(lambda i, body: (503, {}, 0) if i < 10 else (200, chat_reply("tie"), 0))
    try:
        oracle = make_oracle({"kind": "judge", "base_url": srv.url, "model": "m", "both_orders": False,
                              "max_retries": 1, "backoff_s": 0.0, "concurrency": 1})
        with pytest.raises(OracleError, match="2 attempts.*http_503"):
            oracle.label(["p"], ["a"], ["b"])
    finally:
        srv.close()

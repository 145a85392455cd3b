"""Win rate: ties count 1/2, the Wilson 95% interval, and the generate -> judge plumbing."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from duel.evaluate import best_of_n, evaluate_policy, wilson_interval, win_rate, win_rate_from_probs
from duel.oracles import make_oracle


def test_wilson_known_values_and_coverage():
    assert wilson_interval(0.5, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    assert wilson_interval(0.0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(0.1, 50) == pytest.approx((0.0435, 0.2136), abs=1e-4)
    rng = np.random.default_rng(0)
    p, n = 0.3, 40
    hits = [lo <= p <= hi for lo, hi in (wilson_interval(k / n, n) for k in rng.binomial(n, p, size=4000))]
    assert 0.93 <= np.mean(hits) <= 0.97


def test_ties_count_half_and_skips_left_out():
    w = win_rate_from_probs(np.array([0.9, 0.5, 0.1, np.nan, 0.7]))
    assert (w.n, w.wins, w.ties, w.losses) == (4, 2, 1, 1)
    assert w.win_rate == pytest.approx(0.625) and w.mean_prob == pytest.approx(0.55)
    assert (w.lo, w.hi) == pytest.approx(wilson_interval(0.625, 4))
    d = w.as_dict()
    assert d["win_rate"] == 0.625 and d["win_rate_lo"] == w.lo and d["win_rate_n"] == 4


def test_win_rate_with_rule_oracle():
    oracle = make_oracle({"kind": "rule", "reward": "duel.tasks.arithmetic:arithmetic_reward", "tau": 0.0})
    w = win_rate(oracle, ["1+1=", "2+2=", "3+3=", "4+4="], ["2", "5", "9", "x"], ["3", "3", "7", "8"])
    assert (w.wins, w.ties, w.losses) == (1, 1, 2)


@pytest.mark.slow
def test_evaluate_policy_plumbing_matches_gold_reward():
    """Every reported win equals gold(response) vs gold(reference) for the same prompt."""
    from duel.models import build_model
    from duel.tasks import get_task

    t = get_task("tests.duel.test_tasks:Parity")
    model = build_model(t.model_config(), seed=3)
    oracle = make_oracle({"kind": "task", "tau": 0.0}, task=t)
    rows = t.eval_prompts + t.train_prompts
    ev = evaluate_policy(model, t.tokenizer, rows, t.references, oracle, jax.random.key(0), max_new_tokens=4,
                         samples=1, well_formed=t.well_formed)  # n = 1 twice: one compilation
    for mode, n in (("greedy", 1), ("sampled", 1)):
        texts = ev[f"responses_{mode}"]
        assert len(texts) == len(rows) and all(len(x) == n for x in texts)
        score = [
            np.sign(t.gold_reward(r["prompt"], y) - t.gold_reward(r["prompt"], t.references[r["id"]])) / 2 + 0.5
            for r, ys in zip(rows, texts) for y in ys
        ]
        assert ev[mode].win_rate == pytest.approx(np.mean(score))
        wf = np.mean([t.well_formed(r["prompt"], y) for r, ys in zip(rows, texts) for y in ys])
        assert ev[f"well_formed_{mode}"] <= wf + 1e-9
    # best of n: the chosen sample maximises the ensemble mean (here: 2 members, gold and -length)
    rows = rows[:5]  # 20 rows x n=2 hits a very slow XLA compile of duel.sampling.generate on CPU
    feats = lambda ps, ys: np.array([[t.gold_reward(p, y), -len(y)] for p, y in zip(ps, ys)])
    out = best_of_n(model, t.tokenizer, rows, t.references, oracle, jax.random.key(1), 2,
                    reward_fn=lambda f: np.stack([2 * f[..., 0], f[..., 1]]), features_fn=feats, max_new_tokens=4)
    texts, chosen = out["responses"], out["chosen"]
    for r, ys, c in zip(rows, texts, chosen):
        means = [2 * t.gold_reward(r["prompt"], y) - len(y) for y in ys]
        assert means[c] == max(means)
    score = [np.sign(t.gold_reward(r["prompt"], ys[c]) - t.gold_reward(r["prompt"], t.references[r["id"]])) / 2 + 0.5
             for r, ys, c in zip(rows, texts, chosen)]
    assert out["best_of_n"].n == len(rows) and out["best_of_n"].win_rate == pytest.approx(np.mean(score))


def test_expected_win_rate_against_numpy_transcription():
    from duel.evaluate import expected_win_rate

    rng = np.random.default_rng(0)
    prob = rng.uniform(size=(40, 4))
    prob[3, 1] = np.nan  # a skipped comparison: that prompt averages its 3 others
    prob[7, :] = np.nan  # a prompt with no answer at all is left out
    got = expected_win_rate(prob)
    # transcription: per-prompt mean of answered samples, then mean +- t(0.975, P-1) sd / sqrt(P)
    means = []
    for i in range(40):
        if i == 7:
            continue
        row = [p for p in prob[i] if p == p]
        means.append(sum(row) / len(row))
    P = len(means)
    m = sum(means) / P
    sd = (sum((x - m) ** 2 for x in means) / (P - 1)) ** 0.5
    t = 2.0243942  # t quantile 0.975 at 38 degrees of freedom (tables: 2.024)
    assert got.prompts == 39 and got.samples == 4
    assert got.mean == pytest.approx(m, abs=1e-12)
    assert got.lo == pytest.approx(m - t * sd / P ** 0.5, abs=1e-6)
    assert got.hi == pytest.approx(m + t * sd / P ** 0.5, abs=1e-6)
    d = got.as_dict()
    assert set(d) == {"expected_win_rate", "expected_win_rate_lo", "expected_win_rate_hi"}


def test_expected_win_rate_is_the_soft_mean_not_the_thresholded_rate():
    from duel.evaluate import expected_win_rate, win_rate_from_probs

    prob = np.array([[0.6, 0.6], [0.4, 0.4]])
    assert expected_win_rate(prob).mean == pytest.approx(0.5)
    assert win_rate_from_probs(prob.reshape(-1)).win_rate == 0.5
    prob = np.array([[0.9, 0.9], [0.45, 0.45]])  # thresholded: 1/2 either way; expected sees 0.675
    assert expected_win_rate(prob).mean == pytest.approx(0.675)

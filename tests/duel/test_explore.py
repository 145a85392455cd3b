"""Every strategy against a NumPy reference (given the same random draws), select_pairs end to
end on hand-built reward tensors, diagnostics, duplicates, synthetic pairs, prompt selection."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from duel import explore
from duel.explore import STRATEGIES, select_pairs, select_prompts, synthetic_mask, synthetic_pairs

K, P, M = 6, 9, 7


def _rand(seed=0, ids_dup=False):
    rng = np.random.default_rng(seed)
    r = rng.normal(size=(K, P, M)).astype(np.float32)
    ids = np.tile(np.arange(M), (P, 1))
    if ids_dup:  # candidates 0 and 1 are the same response, so are 3 and 4
        ids[:, 1], ids[:, 4] = 0, 3
    return rng, r, ids.astype(np.int32)


def _masked_argmax(score, ok):
    return int(np.argmax(np.where(ok, score, -np.inf)))


# ---- NumPy references ---------------------------------------------------------------------


def ref_ee_ts(r, first, others, ids):
    out = []
    for p in range(r.shape[1]):
        a = int(np.argmax(r[first[p], p]))
        b = None
        for k in others[p]:
            j = int(np.argmax(r[k, p]))
            if ids[p, j] != ids[p, a]:
                b = j
                break
        if b is None:
            b = _masked_argmax(r[first[p], p], ids[p] != ids[p, a])
        out.append((a, b))
    return np.array(out)


def ref_bai_ts(r, first, ids):
    out = []
    for p in range(r.shape[1]):
        a = int(np.argmax(r[first[p], p]))
        var = np.array([np.var(r[:, p, a] - r[:, p, j]) for j in range(r.shape[2])])
        out.append((a, _masked_argmax(var, ids[p] != ids[p, a])))
    return np.array(out)


def ref_best_pair(score_fn, ids, P, M):
    out = []
    for p in range(P):
        best, pair = -np.inf, None
        for i in range(M):
            for j in range(i + 1, M):
                s = score_fn(p, i, j)
                if ids[p, i] != ids[p, j] and s > best + 1e-6:
                    best, pair = s, (i, j)
        out.append(pair)
    return np.array(out)


def test_ee_ts_matches_reference():
    for dup in (False, True):
        rng, r, ids = _rand(1, dup)
        first = rng.integers(0, K, P)
        others = rng.integers(0, K, (P, 3))
        others[0] = first[0]  # force the fallback on prompt 0: every retry agrees with `first`
        a, b, found = explore.ee_ts(jnp.asarray(r), jnp.asarray(first), jnp.asarray(others), jnp.asarray(ids))
        np.testing.assert_array_equal(np.stack([a, b], 1), ref_ee_ts(r, first, others, ids))
        assert not bool(found[0])


def test_bai_ts_matches_reference():
    for dup in (False, True):
        rng, r, ids = _rand(2, dup)
        first = rng.integers(0, K, P)
        a, b = explore.bai_ts(jnp.asarray(r), jnp.asarray(first), jnp.asarray(ids))
        np.testing.assert_array_equal(np.stack([a, b], 1), ref_bai_ts(r, first, ids))


def test_uncertainty_matches_reference():
    for dup in (False, True):
        _, r, ids = _rand(3, dup)
        a, b = explore.uncertainty(jnp.asarray(r), jnp.asarray(ids))
        ref = ref_best_pair(lambda p, i, j: np.var(r[:, p, i] - r[:, p, j]), ids, P, M)
        np.testing.assert_array_equal(np.stack([a, b], 1), ref)


def test_bon_won_matches_reference():
    for dup in (False, True):
        _, r, ids = _rand(4, dup)
        a, b = explore.bon_won(jnp.asarray(r), jnp.asarray(ids))
        mean = r.mean(0)
        ref = [(int(np.argmax(mean[p])), _masked_argmax(-mean[p], ids[p] != ids[p, np.argmax(mean[p])])) for p in range(P)]
        np.testing.assert_array_equal(np.stack([a, b], 1), np.array(ref))


def test_apl_matches_reference():
    for dup in (False, True):
        rng, _, ids = _rand(5, dup)
        ir = rng.normal(size=(P, M)).astype(np.float32)
        a, b = explore.apl(jnp.asarray(ir), jnp.asarray(ids))
        pairs = ref_best_pair(lambda p, i, j: abs(ir[p, i] - ir[p, j]), ids, P, M)
        ref = np.array([(i, j) if ir[p, i] >= ir[p, j] else (j, i) for p, (i, j) in enumerate(pairs)])
        np.testing.assert_array_equal(np.stack([a, b], 1), ref)


def test_passive_and_xpo_match_reference():
    rng, _, ids = _rand(6, True)
    u = rng.random((2, P, M)).astype(np.float32)
    a, b = explore.passive(jnp.asarray(u), jnp.asarray(ids))
    for p in range(P):
        ra = int(np.argmax(u[0, p]))
        assert (int(a[p]), int(b[p])) == (ra, _masked_argmax(u[1, p], ids[p] != ids[p, ra]))
    ref = rng.random((P, M)) < 0.5
    ref[0] = False  # no reference sample: fallback
    ref[1, :] = True  # no policy sample: fallback
    a, b, ok = explore.xpo(jnp.asarray(ref), jnp.asarray(u), jnp.asarray(ids))
    for p in range(2, P):
        if ref[p].any() and (~ref[p]).any():
            ra = _masked_argmax(u[0, p], ~ref[p])
            rb = _masked_argmax(u[1, p], ref[p] & (ids[p] != ids[p, ra]))
            if (ref[p] & (ids[p] != ids[p, ra])).any():
                assert (int(a[p]), int(b[p])) == (ra, rb)
    assert not bool(ok[0]) and not bool(ok[1])
    assert int(a[0]) != int(b[0]) and int(a[1]) != int(b[1])


# ---- select_pairs end to end on hand-built tensors -----------------------------------------


def test_select_pairs_hand_built():
    key = jax.random.key(0)
    # members agree: candidate 2 best, 0 second best, 3 worst -> ee_ts falls back to (2, 0)
    base = np.array([0.5, -1.0, 1.0, -2.0, 0.0], np.float32)
    r = np.stack([base * (1 + 0.1 * k) for k in range(4)])[:, None, :]  # [4, 1, 5]
    pairs, diag = select_pairs("ee_ts", r, key)
    assert pairs.tolist() == [[2, 0]] and float(diag["ts_fallback_rate"]) == 1.0
    assert select_pairs("bon_won", r, key)[0].tolist() == [[2, 3]]
    # bai_ts: first is 2 under any member; Var[r(2) - r(j)] grows with |1 - base_j| -> j = 3
    assert select_pairs("bai_ts", r, key)[0].tolist() == [[2, 3]]
    assert select_pairs("uncertainty", r, key)[0].tolist() == [[2, 3]]
    assert float(diag["disagreement_rate"]) == 0.0 and float(diag["identical_rate"]) == 0.0
    # two members with different favourites: ee_ts always duels them
    r2 = np.array([[[3.0, 0, 0, 0]], [[0, 0, 0, 3.0]]], np.float32)
    for s in range(10):
        pairs, diag = select_pairs("ee_ts", r2, jax.random.key(s))
        assert sorted(pairs[0].tolist()) == [0, 3]
        assert float(diag["disagreement_rate"]) == 1.0
        np.testing.assert_allclose(float(diag["diff_variance"]), 9.0)  # var of (3, -3)
        np.testing.assert_allclose(float(diag["pair_variance"]), 2.25)  # var of (3, 0)


def test_thompson_first_is_uniform_over_members():
    # member k prefers candidate k: the first response's frequency is the member frequency
    Kh, Ph = 4, 4000
    r = np.tile(np.eye(Kh, dtype=np.float32)[:, None, :], (1, Ph, 1))
    pairs, _ = select_pairs("ee_ts", r, jax.random.key(1))
    freq = np.bincount(np.asarray(pairs[:, 0]), minlength=Kh) / Ph
    np.testing.assert_allclose(freq, 0.25, atol=0.03)
    assert np.all(np.asarray(pairs[:, 0]) != np.asarray(pairs[:, 1]))


def test_passive_is_uniform_over_distinct_pairs():
    r = np.zeros((2, 6000, 4), np.float32)
    pairs = np.asarray(select_pairs("passive", r, jax.random.key(2))[0])
    assert np.all(pairs[:, 0] != pairs[:, 1])
    counts = np.zeros((4, 4))
    np.add.at(counts, (pairs[:, 0], pairs[:, 1]), 1)
    off = counts[~np.eye(4, dtype=bool)] / len(pairs)
    np.testing.assert_allclose(off, 1 / 12, atol=0.015)


def test_duplicates_are_avoided_and_flagged():
    _, r, ids = _rand(7, True)
    for s in ("passive", "ee_ts", "bai_ts", "uncertainty", "bon_won"):
        pairs, diag = select_pairs(s, r, jax.random.key(3), candidate_ids=ids)
        pairs = np.asarray(pairs)
        assert np.all(ids[np.arange(P), pairs[:, 0]] != ids[np.arange(P), pairs[:, 1]]), s
        assert diag["identical"].shape == (P,) and float(diag["identical_rate"]) == 0.0
    # every candidate the same response: the pair is identical and flagged
    same = np.zeros((P, M), np.int32)
    pairs, diag = select_pairs("ee_ts", r, jax.random.key(3), candidate_ids=same)
    assert bool(np.all(diag["identical"])) and float(diag["identical_rate"]) == 1.0


def test_select_pairs_all_strategies_shapes_and_determinism():
    _, r, _ = _rand(8)
    opts = {
        "apl": {"implicit_rewards": r[0], "entropy": np.ones(P)},
        "xpo": {"from_reference": np.arange(M)[None].repeat(P, 0) >= 3},
    }
    for s in STRATEGIES:
        p1, d1 = select_pairs(s, r, jax.random.key(4), **opts.get(s, {}))
        p2, _ = select_pairs(s, r, jax.random.key(4), **opts.get(s, {}))
        assert p1.shape == (P, 2) and p1.dtype == jnp.int32
        np.testing.assert_array_equal(p1, p2)
        assert np.all(np.asarray(p1[:, 0]) != np.asarray(p1[:, 1]))
        for k in ("identical_rate", "disagreement_rate", "pair_variance", "diff_variance"):
            assert np.ndim(d1[k]) == 0
    pairs, _ = select_pairs("xpo", r, jax.random.key(4), **opts["xpo"])
    assert np.all(np.asarray(pairs[:, 0]) < 3) and np.all(np.asarray(pairs[:, 1]) >= 3)


def test_select_pairs_errors():
    _, r, _ = _rand(9)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="valid: passive, ee_ts, bai_ts, uncertainty, apl, xpo, bon_won"):
        select_pairs("greedy", r, key)
    with pytest.raises(ValueError, match=r"\[members, prompts, candidates\]"):
        select_pairs("passive", r[0], key)
    with pytest.raises(ValueError, match="at least 2 candidates"):
        select_pairs("passive", r[:, :, :1], key)
    with pytest.raises(ValueError, match="needs implicit_rewards"):
        select_pairs("apl", r, key)
    with pytest.raises(ValueError, match="needs from_reference"):
        select_pairs("xpo", r, key)
    with pytest.raises(ValueError, match=rf"implicit_rewards must be shaped \[{P}, {M}\]"):
        select_pairs("apl", r, key, implicit_rewards=np.zeros((P, M + 1)))
    with pytest.raises(ValueError, match="unknown options"):
        select_pairs("passive", r, key, max_retries=3)


def test_synthetic_pairs_largest_margin_under_a_member():
    _, r, _ = _rand(10)
    pairs, prob = synthetic_pairs(jnp.asarray(r), jax.random.key(5))
    pairs, prob = np.asarray(pairs), np.asarray(prob)
    for p in range(P):
        a, b = pairs[p]
        # some member ranks a first and b last
        assert any(np.argmax(r[k, p]) == a and np.argmin(r[k, p]) == b for k in range(K))
        ref = np.mean(1 / (1 + np.exp(-(r[:, p, a] - r[:, p, b]))))
        np.testing.assert_allclose(prob[p], ref, rtol=1e-5)
    assert synthetic_mask(jax.random.key(0), 10, 0.3, step=2, burn_in=5).sum() == 0
    m = synthetic_mask(jax.random.key(0), 10, 0.3, step=5, burn_in=5)
    assert m.sum() == 3 and m.dtype == bool


def test_synthetic_pairs_by_the_members_mean():
    """mixed.pair: mean: best and worst candidate under the members' mean reward, the label's
    probability unchanged (the members' mean of the BT probability of that pair)."""
    _, r, _ = _rand(11)
    pairs, prob = synthetic_pairs(jnp.asarray(r), jax.random.key(5), by="mean")
    pairs, prob = np.asarray(pairs), np.asarray(prob)
    mean = r.mean(axis=0)
    np.testing.assert_array_equal(pairs[:, 0], mean.argmax(axis=1))
    np.testing.assert_array_equal(pairs[:, 1], mean.argmin(axis=1))
    a, b = pairs[:, 0], pairs[:, 1]
    rows = np.arange(P)
    ref = np.mean(1 / (1 + np.exp(-(r[:, rows, a] - r[:, rows, b]))), axis=0)
    np.testing.assert_allclose(prob, ref, rtol=1e-5)
    # the key plays no part; a member's pair differs from the mean's on some prompt
    again, _ = synthetic_pairs(jnp.asarray(r), jax.random.key(6), by="mean")
    np.testing.assert_array_equal(np.asarray(again), pairs)
    member, _ = synthetic_pairs(jnp.asarray(r), jax.random.key(5))
    assert (np.asarray(member) != pairs).any()
    with pytest.raises(ValueError, match="by must be 'member' or 'mean'"):
        synthetic_pairs(jnp.asarray(r), jax.random.key(5), by="best")


def test_synthetic_mask_always_leaves_the_oracle_a_prompt():
    # 0.9375 x 8 = 7.5 rounds to 8: every prompt of a generator's share would be ERM-labelled and
    # no query paid again (a tuning run looped to its step cap at 80 queries); at least one stays
    for P, gamma, want in [(8, 0.9375, 7), (16, 0.9375, 15), (8, 0.875, 7), (1, 0.5, 0), (4, 0.99, 3)]:
        assert synthetic_mask(jax.random.key(1), P, gamma, step=3, burn_in=0).sum() == want, (P, gamma)
    assert synthetic_mask(jax.random.key(1), 8, 1.0, step=3, burn_in=0).sum() == 8


def test_select_prompts_uncertainty_and_spread():
    # prompts 0 and 1 are the most uncertain but sit on top of each other; prompt 2 is far away
    r = np.zeros((2, 4, 3), np.float32)
    r[0, :2], r[1, :2] = 1.0, -1.0  # variance 1 on prompts 0, 1
    r[0, 2], r[1, 2] = 0.8, -0.8  # variance 0.64 on prompt 2
    x = np.array([[0, 0], [1e-3, 0], [10, 0], [0, 10]], np.float32)
    assert select_prompts(r, x, 2, beta=0.0).tolist() == [0, 1]  # uncertainty only
    assert select_prompts(r, x, 2, beta=0.1).tolist() == [0, 2]  # spread pushes 1 out
    seen = np.array([[0, 0]], np.float32)
    assert select_prompts(r, x, 1, beta=0.1, seen=seen).tolist() == [2]


def test_pair_probs_is_the_member_mean_of_the_bt_probability_and_labels_synthetic_pairs():
    from duel.explore import pair_probs, synthetic_pairs

    rng = np.random.default_rng(3)
    K, P, M = 5, 7, 4
    r = rng.normal(size=(K, P, M)).astype(np.float32)
    pairs = rng.integers(0, M, size=(P, 2))
    want = [np.mean([1 / (1 + np.exp(-(r[k, p, pairs[p, 0]] - r[k, p, pairs[p, 1]]))) for k in range(K)])
            for p in range(P)]
    np.testing.assert_allclose(pair_probs(r, pairs), want, rtol=1e-6)
    syn, prob = synthetic_pairs(jnp.asarray(r), jax.random.PRNGKey(0))
    np.testing.assert_allclose(pair_probs(r, np.asarray(syn)), np.asarray(prob), rtol=1e-5)

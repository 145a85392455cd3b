"""ERM: learns a linear utility, members disagree before training and less after, loss matches
the formula, replay buffer round-trips, best-of-n under the ensemble."""

import pickle

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from duel.ensemble import (
    ERM,
    ERMConfig,
    ReplayBuffer,
    anchor_sq_dist,
    best_of_n,
    epistemic_variance,
    erm_loss,
    rewards,
    update,
)

F = 8
CFG = ERMConfig(num_members=8, hidden=(32, 32), lr=3e-3, anchor_lambda=1.0)


def _pairs(rng, theta, n):
    fa = rng.normal(size=(n, F)).astype(np.float32)
    fb = rng.normal(size=(n, F)).astype(np.float32)
    prob = 1 / (1 + np.exp(-(fa - fb) @ theta))
    return fa, fb, prob.astype(np.float32)


def _sign_disagreement(erm, fa, fb):
    """Fraction of (member, member, pair) triples whose preferred response differs."""
    d = np.asarray(erm.rewards(fa) - erm.rewards(fb)) > 0  # [K, N]
    return float(np.mean(d[:, None, :] != d[None, :, :]))


@pytest.fixture(scope="module")
def trained():
    rng = np.random.default_rng(0)
    theta = 3.0 * rng.normal(size=F) / np.sqrt(F)
    erm0 = ERM.create(F, CFG, jax.random.key(0))
    buf = ReplayBuffer(4096, F)
    fa, fb, prob = _pairs(rng, theta, 2048)
    labels = (rng.random(2048) < prob).astype(np.float32)  # BT-sampled binary labels
    buf.add(fa, fb, labels)
    erm = erm0
    for i in range(60):
        k1, k2 = jax.random.split(jax.random.key(i + 1))
        bfa, bfb, bp = buf.sample(k1, 128, num_batches=5)
        erm, metrics = update(erm, bfa, bfb, bp, buf.total, k2)
    return erm0, erm, theta, metrics


def test_erm_learns_linear_utility(trained):
    erm0, erm, theta, metrics = trained
    rng = np.random.default_rng(123)
    fa, fb, _ = _pairs(rng, theta, 1000)
    truth = (fa - fb) @ theta > 0
    mean_delta = np.asarray(jnp.mean(erm.rewards(fa) - erm.rewards(fb), axis=0))
    acc = np.mean((mean_delta > 0) == truth)
    acc0 = np.mean((np.asarray(jnp.mean(erm0.rewards(fa) - erm0.rewards(fb), 0)) > 0) == truth)
    assert acc >= 0.90, acc
    assert acc0 < 0.75, acc0  # it was the training that did it
    assert int(erm.step) == 300
    assert float(metrics["erm_nll"]) < 0.5


def test_members_disagree_before_and_less_after(trained):
    erm0, erm, theta, _ = trained
    rng = np.random.default_rng(7)
    fa, fb, _ = _pairs(rng, theta, 500)
    before, after = _sign_disagreement(erm0, fa, fb), _sign_disagreement(erm, fa, fb)
    assert before > 0.3, before  # random members: close to a coin flip per member pair
    assert after < 0.5 * before, (before, after)
    # the epistemic variance of the reward difference shrinks relative to its mean
    d0, d1 = erm0.rewards(fa) - erm0.rewards(fb), erm.rewards(fa) - erm.rewards(fb)
    cv0 = float(jnp.mean(jnp.sqrt(epistemic_variance(d0)) / (jnp.abs(jnp.mean(d0, 0)) + 1e-6)))
    cv1 = float(jnp.mean(jnp.sqrt(epistemic_variance(d1)) / (jnp.abs(jnp.mean(d1, 0)) + 1e-6)))
    assert cv1 < 0.5 * cv0


def test_loss_matches_formula():
    erm = ERM.create(F, CFG, jax.random.key(3))
    # move the params off the anchor so the regulariser is non-zero
    params = jax.tree.map(lambda p: p + 0.01, erm.params)
    rng = np.random.default_rng(1)
    fa, fb = rng.normal(size=(2, 16, F)).astype(np.float32)
    p = rng.random(16).astype(np.float32)
    masks = (rng.random((CFG.num_members, 16)) < 0.7).astype(np.float32)
    N, lam = 200.0, 0.5
    loss, _ = erm_loss(params, erm.anchor, fa, fb, p, masks, N, lam)
    # NumPy reference
    d = np.asarray(rewards(params, fa) - rewards(params, fb), np.float64)
    nll = -(p * np.log(1 / (1 + np.exp(-d))) + (1 - p) * np.log(1 / (1 + np.exp(d))))
    reg = sum(np.sum((np.asarray(a) - np.asarray(b)) ** 2, axis=tuple(range(1, a.ndim)))
              for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(erm.anchor)))
    ref = np.sum((np.sum(masks * nll, 1) + lam * 16 / N * reg) / 16)
    np.testing.assert_allclose(float(loss), ref, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(anchor_sq_dist(params, erm.anchor)), reg, rtol=1e-4)


def test_state_is_a_pytree_and_update_is_deterministic():
    erm = ERM.create(F, CFG, jax.random.key(0))
    leaves, treedef = jax.tree.flatten(erm)
    again = jax.tree.unflatten(treedef, leaves)
    assert isinstance(again, ERM) and again.config == CFG and again.feature_dim == F
    shipped = pickle.loads(pickle.dumps(erm))  # what ray.put does
    assert shipped.config == CFG
    np.testing.assert_array_equal(np.asarray(shipped.params[0]["w"]), np.asarray(erm.params[0]["w"]))
    rng = np.random.default_rng(0)
    fa, fb = rng.normal(size=(2, 32, F)).astype(np.float32)
    p = rng.random(32).astype(np.float32)
    a, _ = update(erm, fa, fb, p, 64, jax.random.key(5))
    b, _ = update(erm, fa, fb, p, 64, jax.random.key(5))
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert int(a.step) == CFG.steps_per_update
    with pytest.raises(ValueError, match=r"\[\.\.\., 8\]"):
        update(erm, fa[:, :4], fb[:, :4], p, 64, jax.random.key(5))
    with pytest.raises(ValueError, match="prob_a"):
        update(erm, fa, fb, p[:3], 64, jax.random.key(5))


def _identical_members(bootstrap):
    """One update of an ensemble whose 4 members start as copies of member 0 (params and
    anchor): only the bootstrap masks can make them differ -> spread of each leaf over members."""
    erm = ERM.create(F, ERMConfig(num_members=4, hidden=(16,), bootstrap=bootstrap), jax.random.key(0))
    copies = jax.tree.map(lambda p: jnp.broadcast_to(p[:1], p.shape), erm.params)
    erm = erm.replace(params=copies, anchor=jax.tree.map(jnp.copy, copies))  # Adam's state starts at 0 anyway
    rng = np.random.default_rng(0)
    fa, fb = rng.normal(size=(2, 64, F)).astype(np.float32)
    new, _ = update(erm, fa, fb, np.ones(64, np.float32), 64, jax.random.key(1), steps=3)
    return [float(np.max(np.abs(np.asarray(p) - np.asarray(p)[:1]))) for p in jax.tree.leaves(new.params)]


def test_bootstrap_masks_change_members_differently():
    # with masks (p = 1/2) identical members see different pairs and part; without (p = 1) the
    # same data gives the same update and they stay copies: this test fails with bootstrap off
    assert min(_identical_members(True)) > 1e-4
    assert max(_identical_members(False)) < 1e-7


def test_replay_buffer_ring_and_roundtrip():
    buf = ReplayBuffer(5, 2)
    for i in range(3):  # 9 rows into capacity 5: rows 4..8 survive
        x = np.arange(3 * i, 3 * i + 3, dtype=np.float32)[:, None].repeat(2, 1)
        buf.add(x, -x, np.full(3, 0.25 * (i + 1), np.float32))
    assert len(buf) == 5 and buf.total == 9
    assert sorted(buf.fa[:, 0].tolist()) == [4, 5, 6, 7, 8]
    restored = ReplayBuffer.from_state_dict({k: np.copy(v) for k, v in buf.state_dict().items()})
    key = jax.random.key(9)
    for x, y in zip(buf.sample(key, 7), restored.sample(key, 7)):
        np.testing.assert_array_equal(x, y)
    s = buf.sample(key, 7)
    np.testing.assert_array_equal(s[1], -s[0])  # rows stay paired
    with pytest.raises(ValueError, match=r"\[B, 2\]"):
        buf.add(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="empty"):
        ReplayBuffer(3, 2).sample(key, 1)


def test_best_of_n_mean_worst_uwo():
    # 3 members, 1 prompt, 3 candidates
    r = jnp.array([[[1.0, 0.9, 0.0]], [[1.0, 0.8, 0.0]], [[-2.0, 0.7, 0.0]]])
    assert best_of_n(r, "mean").tolist() == [1]  # means 0.0, 0.8, 0.0
    r2 = jnp.array([[[3.0, 1.0]], [[-0.5, 0.9]]])  # means 1.25, 0.95; stds 1.75, 0.05
    assert best_of_n(r2, "mean").tolist() == [0]
    assert best_of_n(r2, "worst").tolist() == [1]
    assert best_of_n(r2, "uwo", c=0.1).tolist() == [0]  # 1.075 vs 0.945
    assert best_of_n(r2, "uwo", c=1.0).tolist() == [1]  # -0.5 vs 0.9
    with pytest.raises(ValueError, match="valid: mean, worst, uwo"):
        best_of_n(r2, "median")


@pytest.mark.parametrize("hidden,S", [((32, 32), 1), ((16,), 3), ((), 2)])
def test_fused_update_matches_reference(hidden, S):
    """The fast update (first layer of all members as one matmul) equals the plain vmapped one."""
    cfg = ERMConfig(num_members=5, hidden=hidden, bootstrap=True, steps_per_update=4)
    erm = ERM.create(F, cfg, jax.random.key(3))
    rng = np.random.default_rng(1)
    fa, fb = (rng.normal(size=(S, 16, F)).astype(np.float32) for _ in range(2))
    prob = rng.random((S, 16)).astype(np.float32)
    fast, mf = update(erm, fa, fb, prob, 50, jax.random.key(4), steps=4)
    ref, mr = update(erm, fa, fb, prob, 50, jax.random.key(4), steps=4, reference=True)
    assert int(fast.step) == int(ref.step) == 4
    for a, b in zip(jax.tree.leaves((fast.params, fast.opt_state)), jax.tree.leaves((ref.params, ref.opt_state))):
        assert a.shape == b.shape
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-6)
    assert not np.allclose(np.asarray(fast.params[0]["w"]), np.asarray(erm.params[0]["w"]))  # it learned
    for k in ("erm_nll", "erm_anchor", "erm_accuracy"):
        np.testing.assert_allclose(float(mf[k]), float(mr[k]), rtol=1e-5, atol=1e-7)

"""Teacher-forced response log-probs: padding, positions, pooled feature, lean vs plain path."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from duel.logprobs import masked_mean, masked_sum, response_feature, response_logprobs, sequence_logprob
from duel.models import ModelConfig, build_model

V = 61


@functools.cache
def tiny(family="llama", tie=False):
    if family == "llama":
        c = ModelConfig(family="llama", vocab_size=V, hidden_size=16, num_layers=2, num_heads=4, num_kv_heads=2,
                        head_dim=4, intermediate_size=32, tie_word_embeddings=tie, max_position_embeddings=64)
    else:
        c = ModelConfig(family="gpt_neox", vocab_size=V, hidden_size=16, num_layers=2, num_heads=4, num_kv_heads=4,
                        head_dim=4, intermediate_size=32, rotary_dim=2, attention_bias=True, parallel_residual=True,
                        norm_eps=1e-5, hidden_act="gelu", max_position_embeddings=64)
    return build_model(c, seed=1)


def batch(seed=0, B=4, Tp=6, N=5):
    """Left-padded prompts and right-padded responses of varied lengths (one empty response)."""
    rng = np.random.default_rng(seed)
    p_len = np.array([6, 3, 1, 4])[:B]
    r_len = np.array([5, 2, 3, 0])[:B]
    pids = rng.integers(1, V, (B, Tp)).astype(np.int32)
    rids = rng.integers(1, V, (B, N)).astype(np.int32)
    pmask = (np.arange(Tp)[None] >= Tp - p_len[:, None]).astype(np.int32)
    rmask = (np.arange(N)[None] < r_len[:, None]).astype(np.int32)
    pids[pmask == 0] = 0  # pad ids
    rids[rmask == 0] = 0
    return pids, pmask, rids, rmask


def unpadded_reference(model, pids, pmask, rids, rmask):
    """Each row's real tokens packed to the left (no left padding, right-padded), one plain forward:
    log softmax(logits)[next token] and the feature: the mean hidden state over the response tokens
    but the last (the stop token), or the last token's state when that leaves none."""
    B = pids.shape[0]
    rows = [np.concatenate([pids[b][pmask[b] > 0], rids[b][rmask[b] > 0]]) for b in range(B)]
    T = pids.shape[1] + rids.shape[1]
    seq = np.zeros((B, T), np.int32)
    mask = np.zeros((B, T), np.int32)
    for b, r in enumerate(rows):
        seq[b, : len(r)], mask[b, : len(r)] = r, 1
    logits, hidden = jax.jit(lambda s, m: model(s, m, return_hidden=True))(seq, mask)
    logp = jax.nn.log_softmax(np.asarray(logits, np.float64), axis=-1)
    lps = np.zeros(rids.shape)
    for b in range(B):
        p_len, r = int(pmask[b].sum()), rids[b][rmask[b] > 0]
        for t in range(len(r)):
            lps[b, t] = logp[b, p_len - 1 + t, r[t]]
    hs = []
    for b in range(B):
        p_len, n = int(pmask[b].sum()), int(rmask[b].sum())
        h = np.asarray(hidden[b], np.float64)
        hs.append(h[p_len:p_len + n - 1].mean(0) if n > 1 else h[p_len + n - 1])
    return lps, np.stack(hs)


@functools.cache
def _jitted(model, kw):
    graphdef, state = nnx.split(model)
    f = jax.jit(lambda st, *a: response_logprobs(nnx.merge(graphdef, st), *a, **dict(kw)))
    return lambda *a: f(state, *a)


def jitted(model, **kw):
    """response_logprobs jitted once per (model, options) for the whole module."""
    return _jitted(model, tuple(sorted(kw.items())))


@pytest.mark.parametrize("family", ["llama", "gpt_neox"])
def test_matches_unpadded_forward(family):
    model = tiny(family)
    pids, pmask, rids, rmask = batch()
    lp, hidden = jitted(model, return_hidden=True)(pids, pmask, rids, rmask)
    want_lp, want_h = unpadded_reference(model, pids, pmask, rids, rmask)
    assert lp.shape == rids.shape and lp.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(lp), want_lp, atol=2e-5)
    assert np.all(np.asarray(lp)[rmask == 0] == 0.0)
    assert np.all(np.asarray(lp)[rmask > 0] < 0.0)
    np.testing.assert_allclose(np.asarray(hidden), want_h, atol=2e-5)


def pooled_loop(hidden_all, Tp, rmask, finished):
    """NumPy loop: mean of the states at response tokens 0..n-2 (0..n-1 when not finished), else
    the state at the last token (the last prompt token for an empty response)."""
    out = []
    for b in range(hidden_all.shape[0]):
        n = int(rmask[b].sum())
        content = n - 1 if (finished[b] and n > 0) else n
        h = hidden_all[b].astype(np.float64)
        out.append(h[Tp:Tp + content].mean(0) if content > 0 else h[Tp + n - 1])
    return np.stack(out)


def test_response_feature_pools_content_tokens_against_numpy_loop():
    rng = np.random.default_rng(7)
    B, Tp, N, H = 6, 3, 5, 4
    hidden_all = rng.normal(size=(B, Tp + N, H)).astype(np.float32)
    r_len = np.array([5, 1, 0, 3, 1, 5])  # full, stop-only, empty, short, 1-token cut, 5-token cut
    finished = np.array([True, True, True, True, False, False])
    rmask = (np.arange(N)[None] < r_len[:, None]).astype(np.int32)
    got = np.asarray(jax.jit(response_feature, static_argnums=1)(hidden_all, Tp, rmask, finished))
    want = pooled_loop(hidden_all, Tp, rmask, finished)
    np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(got[0], hidden_all[0, Tp:Tp + 4].mean(0), atol=1e-6)  # stop token out
    np.testing.assert_allclose(got[5], hidden_all[5, Tp:].mean(0), atol=1e-6)  # cut: all 5 tokens in
    np.testing.assert_array_equal(got[1], hidden_all[1, Tp])  # stop only: its own state
    np.testing.assert_array_equal(got[2], hidden_all[2, Tp - 1])  # empty: the last prompt token
    np.testing.assert_array_equal(got[4], hidden_all[4, Tp])  # one content token
    # finished=None means every response ends with a stop token
    all_fin = np.asarray(response_feature(hidden_all, Tp, rmask))
    np.testing.assert_allclose(all_fin, pooled_loop(hidden_all, Tp, rmask, np.ones(B, bool)), atol=1e-6)
    assert not np.allclose(all_fin[5], got[5])
    with pytest.raises(ValueError, match="finished must be"):
        response_feature(hidden_all, Tp, rmask, np.ones(B + 1, bool))


@pytest.mark.slow
def test_lean_path_equals_plain_values_and_gradients():
    model = tiny("llama", tie=True)
    pids, pmask, rids, rmask = batch(seed=2)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def total(params, vocab_chunk):
        m = nnx.merge(graphdef, params, rest)
        return jnp.sum(response_logprobs(m, pids, pmask, rids, rmask, vocab_chunk=vocab_chunk) * 0.37)

    grad = jax.jit(jax.value_and_grad(total), static_argnums=1)
    v_plain, g_plain = grad(params, None)
    for chunk in (3,):  # 3 does not divide B*N = 20: the last chunk is padded
        lean = jitted(model, vocab_chunk=chunk)(pids, pmask, rids, rmask)
        np.testing.assert_allclose(np.asarray(lean), np.asarray(jitted(model)(pids, pmask, rids, rmask)), atol=1e-6)
        v_lean, g_lean = grad(params, chunk)
        np.testing.assert_allclose(float(v_lean), float(v_plain), rtol=1e-6)
        for a, b in zip(jax.tree.leaves(g_plain), jax.tree.leaves(g_lean)):
            np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=1e-6)


def test_bfloat16_model_gives_float32_logprobs_close_to_float32():
    model = tiny("llama")
    pids, pmask, rids, rmask = batch(seed=3)
    ref = jitted(model)(pids, pmask, rids, rmask)
    graphdef, state = nnx.split(model)
    bf = nnx.merge(graphdef, jax.tree.map(lambda x: x.astype(jnp.bfloat16), state))
    lean = jitted(bf, vocab_chunk=4)(pids, pmask, rids, rmask)
    assert lean.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(lean), np.asarray(ref), atol=0.05)


def test_jittable_and_sequence_helpers():
    model = tiny("llama")
    pids, pmask, rids, rmask = batch(seed=4)
    lp = np.asarray(jitted(model, vocab_chunk=5)(pids, pmask, rids, rmask))
    np.testing.assert_allclose(lp, np.asarray(jitted(model)(pids, pmask, rids, rmask)), atol=1e-6)
    n = rmask.sum(1)
    np.testing.assert_allclose(np.asarray(masked_sum(lp, rmask)), lp.sum(1), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(masked_mean(lp, rmask)), lp.sum(1) / np.maximum(n, 1), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(sequence_logprob(lp, rmask, average=True)), lp.sum(1) / np.maximum(n, 1), rtol=1e-6)
    assert float(masked_mean(lp, rmask)[3]) == 0.0  # empty response


def test_bad_shapes_are_named():
    model = tiny("llama")
    with pytest.raises(ValueError, match="batch sizes differ"):
        response_logprobs(model, np.ones((2, 3), int), np.ones((2, 3), int), np.ones((3, 2), int), np.ones((3, 2), int))
    with pytest.raises(ValueError, match="vocab_chunk"):
        response_logprobs(model, np.ones((2, 3), int), np.ones((2, 3), int), np.ones((2, 2), int), np.ones((2, 2), int),
                          vocab_chunk=0)

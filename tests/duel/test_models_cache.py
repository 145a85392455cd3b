"""KV cache: prefill + token-by-token forward_cached == full forward, on left-padded batches."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from duel.models import ModelConfig, Transformer, kv_cache, param_shapes

CONFIGS = {
    "llama": ModelConfig(
        family="llama",
        vocab_size=61,
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        head_dim=8,
        intermediate_size=40,
        attention_bias=True,
        architecture="Qwen2ForCausalLM",
        tie_word_embeddings=True,
    ),
    "gpt_neox": ModelConfig(
        family="gpt_neox",
        vocab_size=61,
        hidden_size=32,
        num_layers=2,
        num_heads=2,
        num_kv_heads=2,
        head_dim=16,
        intermediate_size=40,
        rotary_dim=4,
        attention_bias=True,
        parallel_residual=True,
        norm_eps=1e-5,
        hidden_act="gelu",
    ),
    # Qwen3: q/k norms, head_dim 16 != hidden / heads
    "qwen3": ModelConfig(
        family="llama",
        vocab_size=61,
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        num_kv_heads=2,
        head_dim=16,
        intermediate_size=40,
        qk_norm=True,
        architecture="Qwen3ForCausalLM",
    ),
    # Gemma 3: local (window 3, shorter than prompt + decode) / global / local, own RoPE per kind
    "gemma": ModelConfig(
        family="gemma",
        vocab_size=61,
        hidden_size=32,
        num_layers=3,
        num_heads=4,
        num_kv_heads=2,
        head_dim=16,
        intermediate_size=40,
        qk_norm=True,
        hidden_act="gelu_pytorch_tanh",
        tie_word_embeddings=True,
        sliding_window=3,
        layer_types=("sliding_attention", "full_attention", "sliding_attention"),
        local_rope_theta=50.0,
        rope_theta=1000.0,
        rope_scaling={"rope_type": "linear", "factor": 2.0},
        query_pre_attn_scalar=24.0,
        final_logit_softcap=3.0,
    ),
}
# Mistral: the llama shapes with every layer local (window 3): the cache is rings only
CONFIGS["mistral"] = dataclasses.replace(CONFIGS["llama"], attention_bias=False, tie_word_embeddings=False,
                                         architecture="MistralForCausalLM", sliding_window=3)


def expected_cache_shapes(config, batch, max_len):
    """{name: shape}: global layers max_len slots, local (sliding-window) layers a ring of the window."""
    local = sum(config.local_layers)
    ring = min(config.sliding_window or max_len, max_len)
    kv = (config.num_kv_heads, config.head_dim)
    out = {}
    if config.num_layers - local:
        out["k"] = out["v"] = (config.num_layers - local, batch, max_len, *kv)
    if local:
        out["k_local"] = out["v_local"] = (local, batch, ring, *kv)
    return out


def random_model(config, seed, dtype=np.float32):
    """Every parameter random (numpy, no compile): norms around 1, biases and matrices around 0."""
    rng = np.random.default_rng(seed)
    params = {
        n: (0.2 * rng.standard_normal(s) + (n.endswith(("norm", "scale")))).astype(dtype)
        for n, s in param_shapes(config).items()
    }
    return Transformer(config, params)


@pytest.mark.parametrize("family", ["llama", "gpt_neox", "qwen3", "gemma", "mistral"])
def test_prefill_then_decode_matches_full_forward(family):
    model = random_model(CONFIGS[family], seed=1)
    rng = np.random.default_rng(0)
    lengths, tp, n = [5, 2, 4], 5, 4  # prompt lengths (left-padded to tp), then n decoded tokens
    b = len(lengths)
    prompt_mask = np.stack([np.r_[np.zeros(tp - k), np.ones(k)] for k in lengths]).astype(np.int32)
    ids = rng.integers(1, 61, (b, tp + n)).astype(np.int32) * np.r_[
        prompt_mask.T, np.ones((n, b))
    ].T.astype(np.int32)
    full_mask = np.concatenate([prompt_mask, np.ones((b, n), np.int32)], axis=1)
    positions = np.maximum(np.cumsum(full_mask, axis=1) - 1, 0).astype(np.int32)
    graphdef, state = nnx.split(model)
    full = jax.jit(lambda s, i, m: nnx.merge(graphdef, s)(i, m))
    want = np.asarray(full(state, ids, full_mask))  # [B, tp + n, V]
    step = jax.jit(lambda s, i, p, c, m, k: nnx.merge(graphdef, s).forward_cached(i, p, c, m, k))
    cache = model.init_cache(b, tp + n)
    cache_mask = np.concatenate([prompt_mask, np.zeros((b, n), np.int32)], axis=1)
    logits, hidden, cache = step(state, ids[:, :tp], positions[:, :tp], cache, cache_mask, 0)
    got = [np.asarray(logits)]
    for i in range(tp, tp + n):
        cache_mask[:, i] = 1
        logits, hidden, cache = step(
            state, ids[:, i : i + 1], positions[:, i : i + 1], cache, cache_mask, i
        )
        got.append(np.asarray(logits))
    got = np.concatenate(got, axis=1)
    assert got.shape == want.shape
    assert np.abs(got - want)[full_mask.astype(bool)].max() <= 1e-4
    assert hidden.shape == (b, 1, CONFIGS[family].hidden_size)
    assert {k: a.shape for k, a in cache.items()} == expected_cache_shapes(CONFIGS[family], b, tp + n)


def full_logits(model, ids, mask):
    graphdef, state = nnx.split(model)
    return np.asarray(jax.jit(lambda s, i, m: nnx.merge(graphdef, s)(i, m))(state, ids, mask))


def cache_shapes(cache):
    """{name: shape} of a stacked cache, or of a per-layer one (`kv_cache.per_layer`) as if stacked."""
    return {k: (len(a), *a[0].shape) if isinstance(a, list) else a.shape for k, a in cache.items()}


@pytest.mark.parametrize("unroll", [False, True, "layers"], ids=["scan", "unrolled", "layers"])
@pytest.mark.parametrize("family", ["gemma", "mistral"])
def test_ring_cache_chunks_and_growth_match_full_forward(family, unroll):
    """Sliding-window layers on a ring of the window (3): a 7-token prompt (> window) prefilled in
    chunks of 2 and 5 tokens (the second longer than the ring) on a cache of 2 slots (a ring of 2,
    under the window) grown to 9 and then 12 slots, then decoded one token at a time: the logits
    equal the full forward over all 12 tokens, with the layers scanned (a lax.cond picks each
    layer's kind) or unrolled (each layer's kind known), or unrolled with each layer's weights
    and cache as arrays of their own (`layer_slices`, `kv_cache.per_layer`: the accelerator's
    decode step; a local layer's own cache is its ring)."""
    c = CONFIGS[family]
    model = random_model(c, seed=5)
    rng = np.random.default_rng(2)
    b, tp, total = 2, 7, 12
    mask = np.ones((b, total), np.int32)
    mask[1, :3] = 0  # left padding: row 1 has a 4-token prompt
    ids = rng.integers(1, 61, (b, total)).astype(np.int32) * mask
    positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0).astype(np.int32)
    want = full_logits(model, ids, mask)

    graphdef, state = nnx.split(model)
    layers = model.layer_slices() if unroll == "layers" else None
    step = jax.jit(lambda s, i, p, c, m, k: nnx.merge(graphdef, s).forward_cached(
        i, p, c, m, k, unroll_layers=unroll is True, layers=layers))
    # a cache of 2 slots (a ring of 2 < window), grown to 9 before the second chunk
    cache = model.init_cache(b, 2)
    if layers is not None:
        cache = kv_cache.per_layer(cache)
        assert all(isinstance(a, list) for a in cache.values())
    assert cache_shapes(cache) == expected_cache_shapes(c, b, 2)
    got = []
    logits, _, cache = step(state, ids[:, :2], positions[:, :2], cache, mask[:, :2], 0)
    got.append(np.asarray(logits))
    cache = model.grow_cache(cache, 9)
    assert cache_shapes(cache) == expected_cache_shapes(c, b, 9)
    cm = np.pad(mask[:, :tp], ((0, 0), (0, 2)))
    logits, _, cache = step(state, ids[:, 2:tp], positions[:, 2:tp], cache, cm, 2)
    got.append(np.asarray(logits))
    for i in range(tp, total):
        if i == 9:
            cache = model.grow_cache(cache, total)
        s = 9 if i < 9 else total
        cm = np.pad(mask[:, : i + 1], ((0, 0), (0, s - i - 1)))
        logits, _, cache = step(state, ids[:, i : i + 1], positions[:, i : i + 1], cache, cm, i)
        got.append(np.asarray(logits))
    got = np.concatenate(got, axis=1)
    real = mask.astype(bool)
    assert np.abs(got - want)[real].max() <= 1e-4
    shapes = expected_cache_shapes(c, b, total)
    assert cache_shapes(cache) == shapes
    assert all(isinstance(a, list) for a in cache.values()) == (layers is not None)
    assert shapes["k_local"][2] == c.sliding_window  # O(window), not O(sequence)


def test_ring_prefill_keeps_the_last_window_slots():
    """After a prefill of 7 tokens, ring slot r holds the key of absolute slot j in (3, 6] with
    j = r mod 3, and a global layer's cache holds all 7 (bit for bit, the same keys)."""
    c = CONFIGS["gemma"]
    model = random_model(c, seed=6)
    ids = np.random.default_rng(4).integers(1, 61, (1, 7)).astype(np.int32)
    mask = np.ones_like(ids)
    cache = model.init_cache(1, 7)
    _, _, short = model.forward_cached(ids, np.arange(7)[None], cache, mask, 0)
    ring = np.asarray(short["k_local"])  # [2, 1, 3, K, D]
    # the same prompt into a ring that never wraps (window >= 7) holds every slot in place
    import dataclasses

    wide = Transformer(dataclasses.replace(c, sliding_window=7), model.params())
    _, _, full = wide.forward_cached(ids, np.arange(7)[None], wide.init_cache(1, 7), mask, 0)
    every = np.asarray(full["k_local"])  # [2, 1, 7, K, D]
    assert ring.shape[2] == 3 and every.shape[2] == 7
    # only layer 0's keys do not depend on the window (deeper layers see different inputs)
    for j in (4, 5, 6):
        np.testing.assert_array_equal(ring[0, :, j % 3], every[0, :, j])


def test_hidden_states_and_unembed_compose_to_logits():
    model = random_model(CONFIGS["llama"], seed=3)
    graphdef, state = nnx.split(model)

    @jax.jit
    def run(state, ids, mask, pos):
        m = nnx.merge(graphdef, state)
        logits, hidden = m(ids, mask, return_hidden=True)
        return (
            logits,
            hidden,
            m.hidden_states(ids, mask),
            m.unembed(hidden),
            m(ids, mask, positions=pos),
        )

    ids = jnp.array([[0, 0, 5, 7], [1, 2, 3, 4]])
    mask = jnp.array([[0, 0, 1, 1], [1, 1, 1, 1]])
    pos = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0)
    logits, hidden, hidden2, logits2, logits_pos = run(state, ids, mask, pos)
    assert hidden.shape == (2, 4, 32) and logits.shape == (2, 4, 61)
    np.testing.assert_allclose(np.asarray(hidden2), np.asarray(hidden), atol=1e-6)
    np.testing.assert_allclose(np.asarray(logits2), np.asarray(logits), atol=1e-6)
    # explicit positions equal to the default ones give the same logits; stretched ones do not
    # (RoPE is relative, so a constant shift would change nothing)
    np.testing.assert_allclose(np.asarray(logits_pos), np.asarray(logits), atol=1e-5)
    stretched = run(state, ids, mask, pos * 2)[4]
    assert np.abs(np.asarray(stretched) - np.asarray(logits)).max() > 1e-3


@pytest.mark.slow
def test_remat_gives_same_gradients():
    cfg = CONFIGS["gpt_neox"]
    model = random_model(cfg, seed=4)
    ids = jnp.array([[0, 3, 5, 7], [1, 2, 3, 4]])
    mask = jnp.array([[0, 1, 1, 1], [1, 1, 1, 1]])
    graphdef, state = nnx.split(model)

    def loss(s, remat):
        m = nnx.merge(graphdef, s)
        m.remat = remat
        return jnp.sum(jnp.square(m(ids, mask)))

    g0 = jax.jit(jax.grad(loss), static_argnums=1)(state, False)
    g1 = jax.jit(jax.grad(loss), static_argnums=1)(state, True)
    for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_grouped_attention_matches_repeated_kv_reference():
    from duel.models import layers

    rng = np.random.default_rng(0)
    b, t, n, kv, d = 2, 5, 6, 2, 4
    q, k, v = (
        jnp.asarray(rng.standard_normal(s), jnp.float32)
        for s in [(b, t, n, d), (b, t, kv, d), (b, t, kv, d)]
    )
    key_mask = jnp.array([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    mask = layers.attention_mask(jnp.arange(t), jnp.arange(t), key_mask, window=3)
    got = np.asarray(layers.attention(q, k, v, mask))
    want = np.asarray(layers.attention_reference(q, k, v, mask))
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert np.isfinite(got).all()  # rows 0-1 of the first sequence see no key at all
    # the window: query 4 sees keys 2..4 only, so changing key 0 changes nothing there
    v2 = v.at[:, 0].set(100.0)
    np.testing.assert_allclose(
        np.asarray(layers.attention(q, k, v2, mask))[:, 4], got[:, 4], atol=1e-5
    )
    assert np.abs(np.asarray(layers.attention(q, k, v2, mask))[1, 1] - got[1, 1]).max() > 1.0


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_one_query_attention_equals_the_general_form(dtype):
    """A decode step's attention as an accelerator lowers it (`attention_one_query`, the query axis
    dropped) against the general form the CPU keeps: same values, a key-less row finite; and on
    the CPU backend `attention` is the general form bit for bit."""
    from duel.models import layers

    rng = np.random.default_rng(1)
    b, s, n, kv, d = 3, 7, 6, 2, 8
    dt = jnp.dtype(dtype)
    q, k, v = (jnp.asarray(rng.standard_normal(x), dt) for x in [(b, 1, n, d), (b, s, kv, d), (b, s, kv, d)])
    key_mask = jnp.array([[0, 0, 1, 1, 1, 0, 0], [1] * 7, [0] * 7])  # row 2 sees no key at all
    mask = layers.attention_mask(jnp.array([4]), jnp.arange(s), key_mask)
    general = np.asarray(layers._attention(q, k, v, mask, 0.3), np.float32)
    one = np.asarray(layers.attention_one_query(q, k, v, mask, 0.3), np.float32)
    np.testing.assert_allclose(one, general, atol=1e-6 if dtype == "float32" else 1e-2)
    assert np.isfinite(one).all()
    want = np.asarray(layers.attention_reference(q, k, v, mask, 0.3), np.float32)
    np.testing.assert_allclose(one, want, atol=1e-5 if dtype == "float32" else 3e-2)
    shipped = np.asarray(jax.jit(lambda *a: layers.attention(*a, 0.3))(q, k, v, mask), np.float32)
    np.testing.assert_array_equal(shipped, np.asarray(jax.jit(lambda *a: layers._attention(*a, 0.3))(q, k, v, mask),
                                                      np.float32))

"""The policy server: cached decode vs full recompute, log-probs vs score, filtering vs NumPy,
determinism, no recompilation on new sampling parameters, stop tokens and masks."""

import functools
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from duel.models import ModelConfig, build_model
from duel.sampling import (
    GenerationOutput,
    SamplingParams,
    compilations,
    filter_logits,
    generate,
    greedy_reference,
    sample_tokens,
    sample_tokens_one_pass,
    sample_tokens_reference,
    score,
)

VOCAB, NEW = 64, 10

CONFIGS = {
    # Qwen2-like: grouped-query attention, q/k/v biases, tied embeddings
    "llama": ModelConfig(family="llama", vocab_size=VOCAB, hidden_size=32, num_layers=2, num_heads=4,
                         num_kv_heads=2, head_dim=8, intermediate_size=64, attention_bias=True,
                         tie_word_embeddings=True, architecture="Qwen2ForCausalLM"),
    # Pythia-like: parallel residual, partial rotary, biases, untied head
    "gpt_neox": ModelConfig(family="gpt_neox", vocab_size=VOCAB, hidden_size=32, num_layers=2,
                            num_heads=4, num_kv_heads=4, head_dim=8, intermediate_size=64,
                            rotary_dim=4, attention_bias=True, parallel_residual=True,
                            norm_eps=1e-5, hidden_act="gelu", architecture="GPTNeoXForCausalLM"),
}


@functools.cache
def _model(family):
    """A tiny random model with weights scaled up so logits are O(1) (clear greedy margins)."""
    graphdef, state = nnx.split(build_model(CONFIGS[family], seed=1))
    state = jax.tree.map(lambda x: x * 6.0 if x.ndim >= 2 else x, state)
    return nnx.merge(graphdef, state)


@pytest.fixture(scope="module", params=["llama", "gpt_neox"])
def model(request):
    return _model(request.param)


def _prompts():
    """Three left-padded prompts of lengths 3, 7 and 5."""
    rng = np.random.default_rng(0)
    lengths = [3, 7, 5]
    ids = np.zeros((3, 7), np.int32)
    mask = np.zeros((3, 7), np.int32)
    for i, n in enumerate(lengths):
        ids[i, 7 - n:] = rng.integers(1, VOCAB, n)
        mask[i, 7 - n:] = 1
    return ids, mask


def _score_of(model, out: GenerationOutput, ids, mask):
    p, n, N = out.tokens.shape
    return score(model, np.repeat(ids, n, 0), np.repeat(mask, n, 0),
                 out.tokens.reshape(p * n, N), out.mask.reshape(p * n, N))


# ----------------------------------------------------------------------------- filtering


def _filter_numpy(logits, top_k, top_p):
    """Reference: per row, keep the top_k largest, then the smallest prefix whose mass reaches p."""
    out = np.full_like(logits, -np.inf)
    for r, row in enumerate(logits.astype(np.float64)):
        order = np.argsort(-row, kind="stable")
        k = len(row) if top_k == 0 else min(top_k, len(row))
        kept = order[:k]
        probs = np.exp(row[kept] - row[kept].max())
        probs /= probs.sum()
        mass, n_keep = 0.0, 0
        for q in probs:
            if mass >= top_p:
                break
            mass += q
            n_keep += 1
        keep = kept[: max(n_keep, 1)]
        out[r, keep] = logits[r, keep]
    return out


@pytest.mark.parametrize("top_k,top_p", [(0, 1.0), (5, 1.0), (0, 0.5), (0, 0.9), (7, 0.6), (100, 0.3), (1, 1.0)])
def test_filter_logits_matches_numpy(top_k, top_p):
    logits = np.random.default_rng(top_k).normal(0, 2, (6, 40)).astype(np.float32)
    got = np.asarray(filter_logits(jnp.asarray(logits), jnp.int32(top_k), jnp.float32(top_p)))
    want = _filter_numpy(logits, top_k, top_p)
    np.testing.assert_array_equal(np.isfinite(got), np.isfinite(want))
    np.testing.assert_array_equal(got[np.isfinite(got)], want[np.isfinite(want)])
    kept = np.isfinite(got).sum(1)
    if top_k:
        assert (kept <= top_k).all()
    if top_p < 1 and top_k == 0:
        assert (kept < 40).all()  # the nucleus really truncates these rows


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("temperature,top_k,top_p", [(1.0, 0, 1.0), (0.7, 5, 1.0), (0.0, 0, 1.0), (1.3, 0, 0.8),
                                                     (0.9, 3, 0.5), (2.0, 1, 1.0)])
def test_one_pass_sampler_equals_reference(temperature, top_k, top_p, dtype):
    """`sample_tokens_one_pass` (one reduction over the logits) samples the tokens of the plain version
    beside it, ties included, with the same log-probs to float32 rounding; its compensated
    one-pass normalisers are as accurate as two-pass logsumexps on a 151,936-token row (an
    uncompensated running sum is ~4e-5 off there)."""
    rng = np.random.default_rng(int(temperature * 10) + top_k)
    x = rng.normal(0, 3.0, (4, 151_936)).astype(np.float32)
    x[:, 100:110] = x[:, 99:100]  # ties
    x[0, 7] = x[0, 3] = x[0].max() + 5.0  # a tie at the top: the first index wins
    logits = jnp.asarray(x, dtype)
    keys = jax.random.split(jax.random.key(top_k), 4)
    args = (keys, jnp.float32(temperature), jnp.int32(top_k), jnp.float32(top_p))
    tok, lp, plp = jax.jit(sample_tokens_one_pass)(logits, *args)
    ref_tok, ref_lp, ref_plp = jax.jit(sample_tokens_reference)(logits, *args)
    # on the CPU backend `sample_tokens` lowers to the reference: bit for bit
    for got, want in zip(jax.jit(sample_tokens)(logits, *args), (ref_tok, ref_lp, ref_plp)):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
    np.testing.assert_array_equal(np.asarray(tok), np.asarray(ref_tok))
    np.testing.assert_allclose(np.asarray(lp), np.asarray(ref_lp), atol=5e-6)
    np.testing.assert_allclose(np.asarray(plp), np.asarray(ref_plp), atol=5e-6)
    if temperature == 0.0:
        assert int(tok[0]) == 3 and (np.asarray(lp) == 0).all()
    x64 = np.asarray(logits.astype(jnp.float32), np.float64)
    m = x64.max(-1)
    truth = x64[np.arange(4), np.asarray(tok)] - (np.log(np.exp(x64 - m[:, None]).sum(-1)) + m)
    assert np.abs(np.asarray(plp) - truth).max() < 5e-6


# ----------------------------------------------------------------------------- decode parity


@pytest.mark.parametrize("length_buckets", [1, 3])
def test_greedy_cached_decode_equals_full_recompute(model, length_buckets):
    ids, mask = _prompts()
    out = generate(model, (ids, mask), jax.random.key(0),
                   SamplingParams(temperature=0.0, max_new_tokens=NEW), n=2,
                   length_buckets=length_buckets)
    want = greedy_reference(model, ids, mask, NEW)
    assert out.tokens.shape == (3, 2, NEW)
    for j in range(2):
        np.testing.assert_array_equal(out.tokens[:, j], want)
    assert (out.mask == 1).all() and (out.lengths == NEW).all() and not out.finished.any()
    assert (out.logprobs == 0).all()  # greedy: the sampling distribution is a point mass
    # the decode is not trivial: rows differ and tokens vary along each row
    assert len({tuple(r) for r in want}) == 3 and min(len(set(r)) for r in want) >= 3


def test_generate_logprobs_equal_score(model):
    ids, mask = _prompts()
    out = generate(model, (ids, mask), jax.random.key(3),
                   SamplingParams(temperature=1.0, max_new_tokens=NEW), n=2)
    sc = _score_of(model, out, ids, mask)
    lp = out.logprobs.reshape(6, NEW)
    np.testing.assert_allclose(lp, sc.logprobs, atol=1e-5)
    np.testing.assert_allclose(out.policy_logprobs.reshape(6, NEW), sc.logprobs, atol=1e-5)
    np.testing.assert_allclose(sc.logprob_sum, lp.sum(1), atol=1e-4)
    assert (lp < -0.05).mean() > 0.5  # real sampling, not near-greedy
    # the n candidates of a prompt differ
    assert all(len({tuple(c) for c in out.tokens[i]}) > 1 for i in range(3))


def test_truncated_sampling_logprobs(model):
    """With temperature/top-k, the sampling log-probs follow the filtered, tempered distribution and
    policy_logprobs stay the raw policy's (== score)."""
    ids, mask = _prompts()
    params = SamplingParams(temperature=0.7, top_k=4, max_new_tokens=NEW)
    out = generate(model, (ids, mask), jax.random.key(4), params, n=2)
    sc = _score_of(model, out, ids, mask)
    np.testing.assert_allclose(out.policy_logprobs.reshape(6, NEW), sc.logprobs, atol=1e-5)
    # recompute the filtered distribution from full-sequence logits
    seq = np.concatenate([np.repeat(ids, 2, 0), out.tokens.reshape(6, NEW)], 1)
    seq_mask = np.concatenate([np.repeat(mask, 2, 0), np.ones((6, NEW), np.int32)], 1)
    logits = np.asarray(model(jnp.asarray(seq), jnp.asarray(seq_mask)), np.float64)[:, 6:-1] / 0.7
    kth = np.sort(logits, -1)[..., -4][..., None]
    logits = np.where(logits >= kth, logits, -np.inf)
    logz = np.log(np.exp(logits - logits.max(-1, keepdims=True)).sum(-1)) + logits.max(-1)
    want = np.take_along_axis(logits, seq[:, 7:, None], -1)[..., 0] - logz
    np.testing.assert_allclose(out.logprobs.reshape(6, NEW), want, atol=1e-4)
    assert (out.logprobs > out.policy_logprobs).mean() > 0.9  # truncation concentrates the mass


def test_length_buckets_match_plain_cache(model):
    """The segmented decode (short caches) samples exactly what the single full cache samples."""
    ids, mask = _prompts()
    params = SamplingParams(temperature=1.0, max_new_tokens=NEW)
    plain = generate(model, (ids, mask), jax.random.key(5), params, n=2, length_buckets=1)
    fast = generate(model, (ids, mask), jax.random.key(5), params, n=2, length_buckets=3)
    np.testing.assert_array_equal(plain.tokens, fast.tokens)
    np.testing.assert_allclose(plain.logprobs, fast.logprobs, atol=1e-5)


# ----------------------------------------------------------------------------- randomness


def test_same_key_same_samples_and_batch_independence():
    model = _model("llama")
    ids, mask = _prompts()
    params = SamplingParams(temperature=1.0, max_new_tokens=NEW)
    a = generate(model, (ids, mask), jax.random.key(7), params, n=2)
    b = generate(model, (ids, mask), jax.random.key(7), params, n=2)
    c = generate(model, (ids, mask), jax.random.key(8), params, n=2)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_array_equal(a.logprobs, b.logprobs)
    assert (a.tokens != c.tokens).mean() > 0.5
    # a prompt's candidates do not depend on which other prompts share the batch
    first = generate(model, (ids[:1, -3:], mask[:1, -3:]), jax.random.key(7), params, n=2)
    np.testing.assert_array_equal(first.tokens[0], a.tokens[0])
    # prompts as an object with .input_ids / .attention_mask (e.g. a PromptBatch)
    from types import SimpleNamespace

    d = generate(model, SimpleNamespace(input_ids=ids, attention_mask=mask), jax.random.key(7),
                 params, n=2)
    np.testing.assert_array_equal(d.tokens, a.tokens)


def test_changing_sampling_params_does_not_recompile():
    model = _model("llama")
    ids, mask = _prompts()
    key = jax.random.key(0)
    generate(model, (ids, mask), key, SamplingParams(max_new_tokens=NEW), n=2)  # warm
    before = compilations()
    compiled = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiled.append(event)

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        outs = [
            generate(model, (ids, mask), key, SamplingParams(temperature=t, top_p=p, top_k=k,
                     max_new_tokens=NEW, stop_token_ids=s), n=2)
            for t, p, k, s in [(0.5, 1.0, 0, ()), (1.3, 0.8, 0, (3,)), (0.0, 0.5, 3, (5, 9)),
                               (1.0, 0.9, 10, (1, 2, 4))]
        ]
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
    assert compiled == [] and compilations() == before
    assert len({o.tokens.tobytes() for o in outs}) == 4  # the new parameters took effect


# ----------------------------------------------------------------------------- stop tokens


def test_stop_tokens_end_sequences_and_masks(model):
    ids, mask = _prompts()
    free = greedy_reference(model, ids, mask, NEW)
    stop = int(free[0, 3])  # row 0 stops at step 3 (or earlier if the token came before)
    out = generate(model, (ids, mask), jax.random.key(0),
                   SamplingParams(temperature=0.0, max_new_tokens=NEW, stop_token_ids=(stop,),
                                  pad_token_id=VOCAB - 1), n=2)
    for r in range(3):
        hits = np.flatnonzero(free[r] == stop)
        length = hits[0] + 1 if len(hits) else NEW
        assert (out.lengths[r] == length).all() and (out.finished[r] == bool(len(hits))).all()
        np.testing.assert_array_equal(out.tokens[r, :, :length], free[None, r, :length].repeat(2, 0))
        assert (out.tokens[r, :, length:] == VOCAB - 1).all()
        np.testing.assert_array_equal(out.mask[r], np.tile(np.arange(NEW) < length, (2, 1)))
        assert (out.policy_logprobs[r, :, length:] == 0).all()
        assert (out.policy_logprobs[r, :, :length] < 0).all()
    assert out.lengths[0, 0] <= 4

    # sampled: every row is masked exactly up to (and including) its first stop token
    sampled = generate(model, (ids, mask), jax.random.key(1),
                       SamplingParams(temperature=1.5, max_new_tokens=NEW, stop_token_ids=(1, 2, 3, 4, 5, 6)), n=2)
    toks, m = sampled.tokens, sampled.mask
    for p in range(3):
        for j in range(2):
            hits = np.flatnonzero(np.isin(toks[p, j], (1, 2, 3, 4, 5, 6)))
            length = hits[0] + 1 if len(hits) else NEW
            assert sampled.lengths[p, j] == length == m[p, j].sum()
            assert sampled.finished[p, j] == bool(len(hits))
            assert (sampled.logprobs[p, j, length:] == 0).all()
    assert sampled.finished.any() and (sampled.lengths < NEW).any()


# ----------------------------------------------------------------------------- bad input


def test_bad_input_fails_early():
    model = _model("llama")
    ids, mask = _prompts()
    with pytest.raises(ValueError, match="left-padded"):
        generate(model, (ids, mask[:, ::-1]), jax.random.key(0), SamplingParams(), n=1)
    with pytest.raises(ValueError, match="same shape|one shape"):
        generate(model, (ids, mask[:, 1:]), jax.random.key(0), SamplingParams(), n=1)
    with pytest.raises(TypeError, match="input_ids"):
        generate(model, ids, jax.random.key(0), SamplingParams(), n=1)
    with pytest.raises(ValueError, match="top_p"):
        SamplingParams(top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        SamplingParams(temperature=-1.0)
    with pytest.raises(ValueError, match="n \\(candidates"):
        generate(model, (ids, mask), jax.random.key(0), SamplingParams(), n=0)
    with pytest.raises(ValueError, match="right-padded"):
        score(model, ids, mask, np.ones((3, 4), np.int32), np.array([[0, 1, 1, 1]] * 3))


# ----------------------------------------------------------------------------- Qwen3 and Gemma 3

CONFIGS.update({
    # Qwen3: q/k norms, head_dim 16 != hidden / heads
    "qwen3": ModelConfig(family="llama", vocab_size=VOCAB, hidden_size=32, num_layers=2, num_heads=4,
                         num_kv_heads=2, head_dim=16, intermediate_size=64, qk_norm=True,
                         architecture="Qwen3ForCausalLM"),
    # Gemma 3: local layers with a window of 4, far shorter than prompt + decode (7 + 10 slots)
    "gemma": ModelConfig(family="gemma", vocab_size=VOCAB, hidden_size=32, num_layers=3, num_heads=4,
                         num_kv_heads=2, head_dim=16, intermediate_size=64, qk_norm=True,
                         hidden_act="gelu_pytorch_tanh", tie_word_embeddings=True, sliding_window=4,
                         layer_types=("sliding_attention", "full_attention", "sliding_attention"),
                         local_rope_theta=50.0, rope_theta=1000.0, query_pre_attn_scalar=24.0,
                         final_logit_softcap=30.0),
})


@pytest.mark.parametrize("per_layer", [False, True], ids=["scan", "per-layer"])
@pytest.mark.parametrize("family", ["qwen3", "gemma"])
def test_greedy_cached_decode_equals_full_recompute_new_families(family, per_layer, monkeypatch):
    """per-layer: the accelerator's decode step, forced on CPU (each layer's weights and cache as
    arrays of their own; Gemma's local layers each on its own ring of the window)."""
    import duel.sampling

    monkeypatch.setattr(duel.sampling, "unroll_decode_layers", lambda state: per_layer)
    model = _model(family)
    ids, mask = _prompts()
    out = generate(model, (ids, mask), jax.random.key(0),
                   SamplingParams(temperature=0.0, max_new_tokens=NEW), n=2, length_buckets=3)
    want = greedy_reference(model, ids, mask, NEW)
    for j in range(2):
        np.testing.assert_array_equal(out.tokens[:, j], want)
    assert len({tuple(r) for r in want}) == 3 and min(len(set(r)) for r in want) >= 3


def test_per_layer_decode_samples_what_the_scan_samples_on_rings(monkeypatch):
    """Gemma 3 (rings of the window on the local layers), sampled with top-p in 3 length buckets:
    the accelerator's per-layer decode step (forced on CPU) gives the scan's tokens and log-probs."""
    import duel.sampling

    model = _model("gemma")
    ids, mask = _prompts()
    params = SamplingParams(temperature=0.8, top_p=0.9, max_new_tokens=NEW)
    scan = generate(model, (ids, mask), jax.random.key(5), params, n=2, length_buckets=3)
    monkeypatch.setattr(duel.sampling, "unroll_decode_layers", lambda state: True)
    layers = generate(model, (ids, mask), jax.random.key(5), params, n=2, length_buckets=3)
    np.testing.assert_array_equal(scan.tokens, layers.tokens)
    np.testing.assert_allclose(scan.logprobs, layers.logprobs, atol=1e-5)
    np.testing.assert_allclose(scan.policy_logprobs, layers.policy_logprobs, atol=1e-5)


def test_prefill_head_runs_on_the_repeated_rows():
    """With n samples per prompt the first logits come from the output head applied to the
    repeated hidden state, never from a repeat of [P, V] logits: XLA:CPU fused such a repeat into
    the first sampler's argmax, and LLVM's loop vectorizer then never finished compiling it for
    vocabularies of about 20-24 (docs/results/heldout/vocab_probe.py). Checked on the jaxpr, with
    no compile: the prefill's only 2-D matmul into the vocabulary is the head over P * n rows."""
    from duel.sampling import _prefill

    def eqns(jaxpr):  # every equation, nested jaxprs (jit, scan, ...) included
        for e in jaxpr.eqns:
            yield e
            for p in e.params.values():
                for sub in p if isinstance(p, (list, tuple)) else (p,):
                    sub = getattr(sub, "jaxpr", sub)
                    if hasattr(sub, "eqns"):
                        yield from eqns(sub)

    model = _model("llama")
    ids, mask = _prompts()
    P, n = ids.shape[0], 4
    closed = jax.make_jaxpr(lambda i, m: _prefill(model, i, m, n, 16)[1])(jnp.asarray(ids), jnp.asarray(mask))
    heads = [e.outvars[0].aval.shape for e in eqns(closed.jaxpr) if e.primitive.name == "dot_general"
             and len(e.outvars[0].aval.shape) == 2 and e.outvars[0].aval.shape[-1] == VOCAB]
    assert heads == [(P * n, VOCAB)]
    assert closed.jaxpr.outvars[0].aval.shape == (P * n, VOCAB)

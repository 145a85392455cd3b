"""The policy server: batched sampling with a KV cache, n candidates per prompt, exact log-probs.

`generate` prefills each (left-padded) prompt once, repeats its KV cache across the prompt's n
candidates and decodes on device in a `lax.while_loop` that exits as soon as every candidate has
hit a stop token. Temperature, top-p, top-k and the stop ids are traced: changing them never
recompiles. Prompt count and prompt length are rounded up to a few buckets, so a run compiles a
handful of programs. `score` gives teacher-forced log-probs and the pooled final hidden state of
given responses (reference log-probs and the encoder features phi(x, y) come from it: the mean
over the response tokens before the stop token, `duel.logprobs.response_feature`).

Attention cost: a step attends over every slot of the cache it is handed (a sliding-window
layer over its ring of the window, `duel.models.kv_cache`). The decode therefore runs in
`length_buckets` segments, each with a cache just long enough for its last step (the cache grows by
one copy between segments; rings stop at the window); `length_buckets=1` is the plain version with
one full-length cache, kept beside it and tested against it.

Plain references beside the fast paths: `greedy_reference` (greedy decode by full recomputation)
for the cached decode, and `filter_logits` is checked against NumPy in the tests.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from duel.logprobs import response_logprobs
from duel.models import kv_cache

_NEG_INF = -jnp.inf


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """How to sample. temperature 0 = greedy; top_k 0 and top_p 1 = no truncation."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 64
    stop_token_ids: tuple[int, ...] = ()
    pad_token_id: int | None = None  # written after a sequence ends; None = model's pad id, or 0

    def __post_init__(self):
        if not (np.isfinite(self.temperature) and self.temperature >= 0):
            raise ValueError(f"SamplingParams.temperature must be >= 0, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"SamplingParams.top_p must be in (0, 1], got {self.top_p}")
        if int(self.top_k) != self.top_k or self.top_k < 0:
            raise ValueError(f"SamplingParams.top_k must be an int >= 0, got {self.top_k}")
        if int(self.max_new_tokens) != self.max_new_tokens or self.max_new_tokens < 1:
            raise ValueError(f"SamplingParams.max_new_tokens must be an int >= 1, got {self.max_new_tokens}")
        stops = tuple(self.stop_token_ids)
        if any(int(s) != s or s < 0 for s in stops):
            raise ValueError(f"SamplingParams.stop_token_ids must be ints >= 0, got {stops}")
        object.__setattr__(self, "stop_token_ids", tuple(int(s) for s in stops))
        if self.pad_token_id is not None and (int(self.pad_token_id) != self.pad_token_id or self.pad_token_id < 0):
            raise ValueError(f"SamplingParams.pad_token_id must be an int >= 0, got {self.pad_token_id}")


@dataclasses.dataclass
class GenerationOutput:
    """n sampled responses for each of P prompts (NumPy, right-padded with the pad id)."""

    tokens: np.ndarray  # [P, n, N] int32
    mask: np.ndarray  # [P, n, N] int32, 1 on generated tokens (stop token included)
    lengths: np.ndarray  # [P, n] int32
    logprobs: np.ndarray  # [P, n, N] float32, log-prob under the sampling distribution (0 if masked)
    policy_logprobs: np.ndarray  # [P, n, N] float32, log pi(y_t | x, y_<t) at temperature 1
    finished: np.ndarray  # [P, n] bool, ended with a stop token (else hit max_new_tokens)


@dataclasses.dataclass
class ScoreOutput:
    """Teacher-forced scores of B responses (NumPy)."""

    logprobs: np.ndarray  # [B, N] float32 per response token, 0 where masked
    hidden: np.ndarray  # [B, H] float32 phi(x, y): mean final hidden state over the tokens before the stop token
    logprob_sum: np.ndarray  # [B] float32


# ----------------------------------------------------------------------------- sampling math


def filter_logits(logits, top_k, top_p):
    """Set to -inf every token outside the top-k and outside the top-p nucleus.

    top_k = 0 keeps all; the nucleus is the smallest set of highest-probability tokens (after
    top-k) whose probability reaches top_p. Ties with the last kept logit are kept.
    """
    return jnp.where(logits >= _cutoff(logits, top_k, top_p), logits, _NEG_INF)


def _cutoff(logits, top_k, top_p, scale=lambda x: x):
    """[..., 1] the smallest logit `filter_logits(scale(logits))` keeps, unscaled: scale (a
    positive temperature's division) preserves the order, so the caller rescales this one value
    instead of the [..., V] array leaving this function."""
    vocab = logits.shape[-1]
    ranked = -jnp.sort(-logits, axis=-1)  # descending
    k = jnp.where(top_k > 0, jnp.minimum(top_k, vocab), vocab)
    in_k = jnp.arange(vocab) < k
    p = jax.nn.softmax(jnp.where(in_k, scale(ranked), _NEG_INF), axis=-1)
    mass_before = jnp.cumsum(p, axis=-1) - p
    n_keep = jnp.sum(in_k & (mass_before < top_p), axis=-1, keepdims=True)
    return jnp.take_along_axis(ranked, jnp.maximum(n_keep, 1) - 1, axis=-1)


def sample_tokens(logits, keys, temperature, top_k, top_p):
    """One sampling step. logits [B, V]; keys [B] (one per row): `sample_tokens_one_pass` on
    accelerators, `sample_tokens_reference` on the CPU backend (chosen when the program is
    lowered: `jax.lax.platform_dependent`). Both give the same tokens and log-probs to float32
    rounding; XLA:CPU runs the one-pass variadic reduction 1.12-1.18x slower (bench/sample_step.py),
    and the CPU path stays the one every CPU run used before."""
    args = [jnp.asarray(a) for a in (temperature, top_k, top_p)]
    return jax.lax.platform_dependent(logits, keys, *args, cpu=sample_tokens_reference,
                                      default=sample_tokens_one_pass)


def _sampling_parts(logits, keys, temperature, top_k, top_p):
    """What both samplers share -> (greedy, filtered_of, gumbel): `filtered_of(x)` is
    filter_logits(x / temperature) for logits x (the truncation's cut-off scaled like the logits;
    only that [B, 1] cut-off leaves the `cond`), gumbel the [B, V] noise of the Gumbel-max draw."""
    greedy = temperature <= 0
    temp = jnp.where(greedy, 1.0, temperature)

    def scale(x):
        return x.astype(jnp.float32) / temp

    truncate = (top_k > 0) | (top_p < 1.0)
    cut = jax.lax.cond(truncate, lambda x: _cutoff(x.astype(jnp.float32), top_k, top_p, scale),
                       lambda x: jnp.full((*x.shape[:-1], 1), _NEG_INF, jnp.float32), logits)

    def filtered_of(x):
        scaled = scale(x)
        return jnp.where(truncate & ~(scaled >= scale(cut)), _NEG_INF, scaled)

    gumbel = jax.vmap(lambda k: jax.random.gumbel(k, logits.shape[-1:], jnp.float32))(keys)
    return greedy, filtered_of, gumbel


def sample_tokens_one_pass(logits, keys, temperature, top_k, top_p):
    """One sampling step. logits [B, V]; keys [B] (one per row).

    Returns token [B] int32, its log-prob under the sampling distribution [B] and under the raw
    policy (temperature 1, no truncation) [B]. temperature 0 is greedy (sampling log-prob 0).

    The logits are read once: one variadic reduction over the vocabulary gives the Gumbel-max
    token (`jnp.argmax`'s comparator: same token) and the two log-softmax normalisers, each as
    an online (running max, rescaled sum, its rounding error) triple (`_lse_combine`); the
    sampled token's logit is gathered from the raw logits. `sample_tokens_reference` is the plain version (two `logsumexp`s, an argmax and
    two gathers over [B, V]: six passes over the logits on XLA:GPU), kept beside it and tested
    against it (same tokens; log-probs to float32 rounding). Only the truncation's cut-off
    [B, 1] leaves the `cond` (a branch returning the [B, V] logits would copy them every step).
    """
    greedy, filtered_of, gumbel = _sampling_parts(logits, keys, temperature, top_k, top_p)
    x = logits.astype(jnp.float32)
    filtered = filtered_of(x)
    score = jnp.where(greedy, x, filtered + gumbel)
    index = jax.lax.broadcasted_iota(jnp.int32, x.shape, x.ndim - 1)
    ones, zeros = jnp.ones_like(x), jnp.zeros_like(x)  # each element: (max, sum, error) = (value, 1, 0)
    f32 = functools.partial(jnp.asarray, dtype=jnp.float32)
    empty = (f32(_NEG_INF), f32(0.0), f32(0.0))
    _, token, max_f, sum_f, err_f, max_x, sum_x, err_x = jax.lax.reduce(
        (score, index, filtered, ones, zeros, x, ones, zeros), (f32(_NEG_INF), jnp.int32(0), *empty, *empty),
        _sample_combine, (x.ndim - 1,))

    def at_token(a):  # gathered from the raw logits, then the same elementwise math: bit-identical
        return jnp.take_along_axis(a, token[:, None], axis=-1)[:, 0].astype(jnp.float32)

    tok_x = at_token(logits)
    sample_lp = filtered_of(tok_x[:, None])[:, 0] - (max_f + jnp.log(sum_f + err_f))
    policy_lp = tok_x - (max_x + jnp.log(sum_x + err_x))
    return token, jnp.where(greedy, 0.0, sample_lp), policy_lp


def _argmax_combine(acc_v, acc_i, op_v, op_i):
    """`jnp.argmax`'s reduction step (`jax.lax.argmax`): the larger value, NaN wins, the first
    index on a tie."""
    pick_v = (op_v > acc_v) | (op_v != op_v)
    pick_i = pick_v | ((op_v == acc_v) & (op_i < acc_i))
    return jnp.where(pick_v, op_v, acc_v), jnp.where(pick_i, op_i, acc_i)


def _lse_combine(m1, s1, c1, m2, s2, c2):
    """Two partial logsumexps merged, each (running max m, sum s of exp(. - m), its rounding
    error c): one pass over the values, as accurate as a two-pass sum whatever the reduction
    order (the sum is compensated: TwoSum, exact in IEEE arithmetic)."""
    m = jnp.maximum(m1, m2)
    base = jnp.where(m == _NEG_INF, 0.0, m)  # both empty: exp(-inf) = 0, no NaN
    e1, e2 = jnp.exp(m1 - base), jnp.exp(m2 - base)
    a, b = s1 * e1, s2 * e2
    total = a + b
    b_part = total - a
    err = (a - (total - b_part)) + (b - b_part)
    return m, total, c1 * e1 + c2 * e2 + err


def _sample_combine(acc, op):
    """The one reduction of `sample_tokens`: (score, index) argmax, then (max, sum, error) of the
    filtered logits and of the raw logits."""
    v, i = _argmax_combine(acc[0], acc[1], op[0], op[1])
    return (v, i, *_lse_combine(*acc[2:5], *op[2:5]), *_lse_combine(*acc[5:8], *op[5:8]))


def sample_tokens_reference(logits, keys, temperature, top_k, top_p):
    """The plain `sample_tokens` (the previous one, the reference it is tested against): an
    argmax, two `jax.nn.logsumexp`s and two gathers, each over the [B, V] logits."""
    greedy, filtered_of, gumbel = _sampling_parts(logits, keys, temperature, top_k, top_p)
    logits = logits.astype(jnp.float32)
    filtered = filtered_of(logits)
    token = jnp.argmax(jnp.where(greedy, logits, filtered + gumbel), -1).astype(jnp.int32)

    def at_token(x):
        return jnp.take_along_axis(x, token[:, None], axis=-1)[:, 0]

    sample_lp = at_token(filtered) - jax.nn.logsumexp(filtered, axis=-1)
    policy_lp = at_token(logits) - jax.nn.logsumexp(logits, axis=-1)
    return token, jnp.where(greedy, 0.0, sample_lp), policy_lp


# ----------------------------------------------------------------------------- jitted programs


def _prefill(model, prompt_ids, prompt_mask, n, slots):
    """Run the prompts once; return their cache repeated n times and the next-token logits."""
    batch = prompt_ids.shape[0]
    positions = jnp.maximum(jnp.cumsum(prompt_mask, axis=-1) - 1, 0).astype(jnp.int32)
    cache = model.init_cache(batch, slots)
    cache_mask = jnp.pad(prompt_mask, ((0, 0), (0, slots - prompt_mask.shape[1])))
    _, hidden, cache = model.forward_cached(prompt_ids, positions, cache, cache_mask, jnp.int32(0))
    # only the last position's head, on the hidden state repeated n times (not the logits: XLA:CPU
    # fuses a repeat of the logits into the first sampler's Gumbel argmax, and LLVM's loop
    # vectorizer then takes minutes to hours on that kernel at some vocabulary sizes, e.g. 20 and 24)
    logits = model.unembed(jnp.repeat(hidden[:, -1], n, axis=0)).astype(jnp.float32)
    cache = jax.tree.map(lambda c: jnp.repeat(c, n, axis=1), cache)
    return cache, logits


def _segments(new_tokens: int, buckets: int) -> tuple[int, ...]:
    """Boundaries 1 = b_0 < ... < b_m = new_tokens of the decode steps t in [1, new_tokens)."""
    steps = new_tokens - 1
    m = max(1, min(buckets, steps))
    return tuple(sorted({1 + (steps * j) // m for j in range(m + 1)}))


def unroll_decode_layers(state) -> bool:
    """Whether the decode step runs its layers unrolled: on an accelerator, yes. Under the layer
    scan XLA:GPU copies each layer's weights out of the stacked [L, ...] arrays every step before
    the matmul reads them (the weights move 3 times instead of once: bench/cost_model.py). Even
    unrolled, a static slice of a stacked weight is copied whenever XLA:GPU merges two of its
    matmuls (gate and up; q, k and v) or splits a contraction that the slice cannot be tiled
    along, and each layer's K/V is copied out of the stacked cache after the update; so the
    unrolled step gets each layer's weights and cache as arrays of their own, sliced once per
    call, outside the decode loop (`Transformer.layer_slices`; one more copy of the layer weights
    while `generate` runs). On CPU the scan stays (compile time)."""
    leaves = jax.tree.leaves(state)
    devices = getattr(leaves[0], "devices", None) if leaves else None
    return bool(devices) and any(d.platform != "cpu" for d in devices())


@functools.partial(jax.jit, static_argnames=("graphdef", "n", "new_tokens", "bounds", "unroll_layers"))
def _generate(graphdef, state, prompt_ids, prompt_mask, key, alive, temperature, top_k, top_p,
              stop_ids, pad_id, *, n, new_tokens, bounds, unroll_layers=False):
    """Prefill, repeat the cache n times, then sample new_tokens per row; stops early when all
    rows are done. One program: the cache is born, grown and updated in place inside it.

    Step t feeds token t-1 into slot Tp + t - 1 and samples token t. Segment j (steps
    [b_j, b_j+1)) runs on a cache of Tp + b_j+1 - 1 slots. unroll_layers: the decode step's
    layers unrolled (`unroll_decode_layers`).
    """
    model = nnx.merge(graphdef, state)
    prompt_len = prompt_ids.shape[1]
    cache, logits0 = _prefill(model, prompt_ids, prompt_mask, n,
                              prompt_len + (bounds[1] - 1 if len(bounds) > 1 else 0))
    layers = None
    if unroll_layers:  # each layer's weights and cache as arrays of their own (unroll_decode_layers)
        layers = model.layer_slices()
        cache = kv_cache.per_layer(cache)  # a local layer's own cache is its ring
    prompt_mask = jnp.repeat(prompt_mask, n, axis=0)
    batch = prompt_mask.shape[0]
    prompt_lengths = prompt_mask.sum(-1).astype(jnp.int32)
    full_mask = jnp.pad(prompt_mask, ((0, 0), (0, new_tokens)), constant_values=1)
    row_keys = jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(batch))

    def sample(logits, t):
        keys = jax.vmap(jax.random.fold_in, (0, None))(row_keys, t)
        return sample_tokens(logits, keys, temperature, top_k, top_p)

    def emit(carry, t, token, sample_lp, policy_lp):
        done, tokens, lps, plps = carry
        live = ~done
        tokens = tokens.at[:, t].set(jnp.where(live, token, pad_id))
        lps = lps.at[:, t].set(jnp.where(live, sample_lp, 0.0))
        plps = plps.at[:, t].set(jnp.where(live, policy_lp, 0.0))
        done = done | jnp.any(token[:, None] == stop_ids[None, :], axis=-1)
        return done, tokens, lps, plps

    out = (
        ~alive,
        jnp.full((batch, new_tokens), pad_id, jnp.int32),
        jnp.zeros((batch, new_tokens), jnp.float32),
        jnp.zeros((batch, new_tokens), jnp.float32),
    )
    token, slp, plp = sample(logits0, 0)
    out = emit(out, 0, token, slp, plp)

    for start, stop in itertools.pairwise(bounds):
        slots = prompt_len + stop - 1
        cache = model.grow_cache(cache, slots)
        cache_mask = full_mask[:, :slots]

        def cond(loop, stop=stop):
            t, _, _, out = loop
            return (t < stop) & ~jnp.all(out[0])

        def body(loop, cache_mask=cache_mask):
            t, cache, token, out = loop
            ids = token[:, None]
            positions = (prompt_lengths + t - 1)[:, None]
            logits, _, cache = model.forward_cached(ids, positions, cache, cache_mask,
                                                    prompt_len + t - 1, layers=layers)
            nxt, slp, plp = sample(logits[:, -1], t)
            return t + 1, cache, nxt, emit(out, t, nxt, slp, plp)

        _, cache, token, out = jax.lax.while_loop(
            cond, body, (jnp.int32(start), cache, token, out)
        )
    done, tokens, lps, plps = out
    return tokens, lps, plps, done & alive


# ----------------------------------------------------------------------------- public API


def _bucket(x: int, minimum: int = 1) -> int:
    """Round x up to 4 buckets per octave (waste < 25%), never below `minimum` granularity."""
    step = max(minimum, (1 << max(0, int(x - 1).bit_length())) // 4)
    return -(-x // step) * step


def _prompt_arrays(prompts) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(prompts, "input_ids") and hasattr(prompts, "attention_mask"):
        ids, mask = prompts.input_ids, prompts.attention_mask
    elif isinstance(prompts, (tuple, list)) and len(prompts) == 2:
        ids, mask = prompts
    else:
        raise TypeError(
            "prompts must have .input_ids/.attention_mask or be an (input_ids, attention_mask) "
            f"tuple; got {type(prompts).__name__}"
        )
    ids, mask = np.asarray(ids), np.asarray(mask)
    if ids.ndim != 2 or ids.shape != mask.shape or ids.size == 0:
        raise ValueError(
            f"prompt input_ids and attention_mask must be non-empty [P, Tp] arrays of one shape; "
            f"got {ids.shape} and {mask.shape}"
        )
    if not np.isin(mask, (0, 1)).all():
        raise ValueError("prompt attention_mask must hold only 0 and 1")
    if (np.diff(mask.astype(np.int8), axis=1) < 0).any() or (mask[:, -1] == 0).any():
        bad = np.flatnonzero((np.diff(mask.astype(np.int8), axis=1) < 0).any(1) | (mask[:, -1] == 0))
        raise ValueError(f"prompts must be left-padded with at least one token; rows {bad[:8].tolist()} are not")
    return ids.astype(np.int32), mask.astype(np.int32)


def _as_key(key):
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(key)


def generate(model, prompts, key, params: SamplingParams, n: int = 1, *,
             length_buckets: int | None = None) -> GenerationOutput:
    """Sample n responses for each left-padded prompt. See GenerationOutput for the fields.

    Candidate j of prompt i draws from fold_in(key, i * n + j), so its sample does not depend on
    how many other prompts share the batch. length_buckets: decode segments (None = automatic,
    1 = the plain single full-length cache).
    """
    if not isinstance(params, SamplingParams):
        raise TypeError(f"params must be a SamplingParams, got {type(params).__name__}")
    if int(n) != n or n < 1:
        raise ValueError(f"n (candidates per prompt) must be an int >= 1, got {n}")
    ids, mask = _prompt_arrays(prompts)
    num_prompts, prompt_len = ids.shape
    new_tokens = params.max_new_tokens
    if length_buckets is None:
        length_buckets = min(4, max(1, new_tokens // 16))

    pad_id = params.pad_token_id
    if pad_id is None:
        pad_id = getattr(getattr(model, "config", None), "pad_token_id", None) or 0
    pb, tb = _bucket(num_prompts), _bucket(prompt_len, minimum=16)
    ids_b = np.full((pb, tb), pad_id, np.int32)
    mask_b = np.zeros((pb, tb), np.int32)
    ids_b[:num_prompts, tb - prompt_len:] = ids
    mask_b[:num_prompts, tb - prompt_len:] = mask
    ids_b[num_prompts:], mask_b[num_prompts:] = ids_b[0], mask_b[0]  # filler rows, never emitted
    alive = np.arange(pb * n) < num_prompts * n
    stops = list(params.stop_token_ids) or [-1]
    stop_ids = np.full(_bucket(len(stops), minimum=8), -1, np.int32)
    stop_ids[: len(stops)] = stops

    bounds = _segments(new_tokens, length_buckets)
    graphdef, state = nnx.split(model)
    tokens, lps, plps, finished = _generate(
        graphdef, state, ids_b, mask_b, _as_key(key), alive,
        np.float32(params.temperature), np.int32(params.top_k), np.float32(params.top_p),
        stop_ids, np.int32(pad_id), n=n, new_tokens=new_tokens,
        bounds=bounds if len(bounds) > 1 else (), unroll_layers=unroll_decode_layers(state),
    )
    rows = num_prompts * n
    tokens, lps, plps, finished = (np.asarray(a)[:rows] for a in (tokens, lps, plps, finished))
    # a token is generated iff no stop token came before it
    stop_hit = np.isin(tokens, params.stop_token_ids)
    out_mask = (np.cumsum(stop_hit, axis=1) - stop_hit) == 0
    shape = (num_prompts, n, new_tokens)
    return GenerationOutput(
        tokens=tokens.reshape(shape),
        mask=out_mask.astype(np.int32).reshape(shape),
        lengths=out_mask.sum(1).astype(np.int32).reshape(shape[:2]),
        logprobs=lps.reshape(shape),
        policy_logprobs=plps.reshape(shape),
        finished=finished.reshape(shape[:2]),
    )


@functools.partial(jax.jit, static_argnames=("graphdef", "vocab_chunk"))
def _score(graphdef, state, prompt_ids, prompt_mask, response_ids, response_mask, finished, *, vocab_chunk):
    model = nnx.merge(graphdef, state)
    lp, hidden = response_logprobs(model, prompt_ids, prompt_mask, response_ids, response_mask,
                                   return_hidden=True, vocab_chunk=vocab_chunk, finished=finished)
    return lp, hidden.astype(jnp.float32)


def score(model, prompt_ids, prompt_mask, response_ids, response_mask, *,
          vocab_chunk: int | None = 1024, finished=None) -> ScoreOutput:
    """Teacher-forced log-probs of right-padded responses after left-padded prompts (NumPy).

    finished [B] bool: which responses end with a stop token (GenerationOutput.finished; False =
    cut at max_new_tokens, so no token is left out of the feature); None = all of them.

    Batch, prompt length and response length are bucketed like generate's, so a run compiles a
    few programs. vocab_chunk: token positions projected onto the vocabulary at a time (None =
    all at once), which bounds the logits' memory.
    """
    ids, mask = _prompt_arrays((prompt_ids, prompt_mask))
    resp, resp_mask = np.asarray(response_ids), np.asarray(response_mask)
    if resp.ndim != 2 or resp.shape != resp_mask.shape or len(resp) != len(ids):
        raise ValueError(
            f"response_ids and response_mask must be [B, N] with B = {len(ids)} prompts; got "
            f"{resp.shape} and {resp_mask.shape}"
        )
    if (np.diff((resp_mask != 0).astype(np.int8), axis=1) > 0).any():
        raise ValueError("responses must be right-padded (response_mask 1...1 0...0 per row)")
    batch, prompt_len = ids.shape
    bb, tb = _bucket(batch), _bucket(prompt_len, minimum=16)
    nb = _bucket(max(resp.shape[1], 1), minimum=16)
    ids_b, mask_b = np.zeros((bb, tb), np.int32), np.zeros((bb, tb), np.int32)
    resp_b, rmask_b = np.zeros((bb, nb), np.int32), np.zeros((bb, nb), np.int32)
    ids_b[:batch, tb - prompt_len:], mask_b[:batch, tb - prompt_len:] = ids, mask
    resp_b[:batch, : resp.shape[1]] = resp
    rmask_b[:batch, : resp.shape[1]] = resp_mask != 0
    ids_b[batch:], mask_b[batch:] = ids_b[0], mask_b[0]  # filler rows, dropped below
    fin_b = np.ones(bb, bool)
    if finished is not None:
        fin = np.asarray(finished, bool).reshape(-1)
        if fin.shape != (batch,):
            raise ValueError(f"finished must be [B] bool with B = {batch} responses; got shape {np.shape(finished)}")
        fin_b[:batch] = fin
    graphdef, state = nnx.split(model)
    lp, hidden = _score(graphdef, state, ids_b, mask_b, resp_b, rmask_b, fin_b, vocab_chunk=vocab_chunk)
    lp = np.asarray(lp)[:batch, : resp.shape[1]]
    return ScoreOutput(logprobs=lp, hidden=np.asarray(hidden)[:batch],
                       logprob_sum=lp.sum(axis=1, dtype=np.float32))


def compilations() -> int:
    """Programs compiled so far by generate and score; for tests and logs."""
    return _generate._cache_size() + _score._cache_size()


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _next_token_logits(graphdef, state, ids, mask, index):
    """Full forward over the whole (right-padded) sequence; logits at position `index`."""
    logits = nnx.merge(graphdef, state)(ids, mask)
    return jax.lax.dynamic_index_in_dim(logits, index, axis=1, keepdims=False)


def greedy_reference(model, prompt_ids, prompt_mask, max_new_tokens: int,
                     stop_token_ids=(), pad_token_id: int = 0) -> np.ndarray:
    """Greedy decode by full recomputation at every step (the plain version; slow, for tests).

    Every step runs the model over the whole sequence [prompt | tokens so far | masked room for
    the rest] (one shape, one compilation; causality keeps the room from mattering).
    Returns tokens [B, max_new_tokens], pad after a stop token.
    """
    ids, mask = _prompt_arrays((prompt_ids, prompt_mask))
    batch, prompt_len = ids.shape
    seq = np.concatenate([ids, np.zeros((batch, max_new_tokens), np.int32)], axis=1)
    seq_mask = np.concatenate([mask, np.zeros((batch, max_new_tokens), np.int32)], axis=1)
    graphdef, state = nnx.split(model)
    done = np.zeros(batch, bool)
    out = np.full((batch, max_new_tokens), pad_token_id, np.int32)
    for t in range(max_new_tokens):
        logits = _next_token_logits(graphdef, state, seq, seq_mask, np.int32(prompt_len + t - 1))
        nxt = np.asarray(jnp.argmax(logits, -1)).astype(np.int32)
        out[:, t] = np.where(done, pad_token_id, nxt)
        done |= np.isin(nxt, stop_token_ids)
        seq[:, prompt_len + t], seq_mask[:, prompt_len + t] = nxt, 1
    return out

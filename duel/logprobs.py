"""Teacher-forced log-probabilities of responses under a causal LM.

One job: given left-padded prompts [B, Tp] and right-padded responses [B, N], run the model once
over the concatenation and return log pi(y_t | x, y_<t) for every response token [B, N] (0 where
the response is padded), optionally with the encoder features phi(x, y) [B, H]: the mean final
hidden state over the response tokens before the stop token (`response_feature`).

Two ways to turn hidden states into log-probs, and a test compares them:

- plain (`vocab_chunk=None`): logits [B, N, V] for the whole response at once, cast to float32,
  log-softmax, gather.
- lean (`vocab_chunk=C`): the vocabulary projection and log-softmax run over chunks of C token
  positions, so at most C x V logits exist at a time (in the compute dtype, float32 only per
  chunk); the chunk is rematerialised in the backward pass, so gradients stay lean too.

Pure and differentiable in the module's parameters; call it on an NNX module inside a jitted
function (`nnx.merge(graphdef, state)` there), or under `nnx.jit`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def concat_prompt_response(prompt_ids, prompt_mask, response_ids, response_mask):
    """One sequence per row: [left-padded prompt | right-padded response], with positions.

    Returns (input_ids [B, Tp+N], attention_mask [B, Tp+N], positions [B, Tp+N]); positions count
    real tokens from 0 (cumsum of the mask minus one, clipped at 0), so left padding is skipped.
    """
    prompt_ids = jnp.asarray(prompt_ids)
    response_ids = jnp.asarray(response_ids)
    if prompt_ids.ndim != 2 or response_ids.ndim != 2:
        raise ValueError(
            f"prompt_ids and response_ids must be [B, T]; got {prompt_ids.shape} and {response_ids.shape}"
        )
    if prompt_ids.shape[0] != response_ids.shape[0]:
        raise ValueError(f"batch sizes differ: prompts {prompt_ids.shape[0]}, responses {response_ids.shape[0]}")
    if prompt_ids.shape[1] < 1:
        raise ValueError("prompts must have at least one token (the response's first token is predicted from it)")
    ids = jnp.concatenate([prompt_ids, response_ids], axis=1).astype(jnp.int32)
    mask = jnp.concatenate([jnp.asarray(prompt_mask), jnp.asarray(response_mask)], axis=1).astype(jnp.int32)
    positions = jnp.maximum(jnp.cumsum(mask, axis=1) - 1, 0).astype(jnp.int32)
    return ids, mask, positions


def token_logprobs(logits, targets):
    """log softmax(logits)[targets], at least float32. logits [..., V], targets [...] int."""
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    targets = jnp.clip(targets, 0, logits.shape[-1] - 1)
    picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return picked - jax.nn.logsumexp(logits, axis=-1)


def logprobs_plain(unembed, hidden, targets):
    """Reference path: logits for every position at once. hidden [B, N, H], targets [B, N]."""
    return token_logprobs(unembed(hidden), targets)


def logprobs_chunked(unembed, hidden, targets, chunk: int):
    """Lean path: the same numbers, projecting `chunk` token positions onto the vocabulary at a time.

    The B*N positions are flattened, padded to a multiple of `chunk` and scanned; each chunk is
    wrapped in `jax.checkpoint`, so the backward pass recomputes its logits instead of storing them.
    """
    if chunk < 1:
        raise ValueError(f"vocab_chunk must be a positive number of token positions, got {chunk}")
    B, N, H = hidden.shape
    n = B * N
    num_chunks = -(-n // chunk)
    pad = num_chunks * chunk - n
    h = jnp.pad(hidden.reshape(n, H), ((0, pad), (0, 0))).reshape(num_chunks, chunk, H)
    t = jnp.pad(targets.reshape(n), (0, pad)).reshape(num_chunks, chunk)

    @jax.checkpoint
    def one(h_c, t_c):
        return token_logprobs(unembed(h_c), t_c)

    def body(carry, xs):
        return carry, one(*xs)

    _, out = jax.lax.scan(body, None, (h, t))
    return out.reshape(-1)[:n].reshape(B, N)


def response_logprobs(
    model,
    prompt_ids,
    prompt_mask,
    response_ids,
    response_mask,
    *,
    return_hidden: bool = False,
    vocab_chunk: int | None = None,
    finished=None,
):
    """Per-token log-probs of the response tokens under `model`, [B, N] float32 (0 where masked).

    prompt_ids/prompt_mask [B, Tp] left-padded; response_ids/response_mask [B, N] right-padded.
    The model sees the concatenation with positions from the mask. With `return_hidden`, also
    returns the feature phi(x, y) [B, H]: the mean final (post-norm) hidden state over the
    response's tokens except a final stop token (`response_feature`; `finished` [B] bool marks
    the responses that end with one, None = all). `vocab_chunk` (token positions per chunk)
    selects the lean path; None projects the whole response at once.

    The model either has `hidden_states(ids, mask, positions)` and `unembed(hidden)` (our models),
    or is only callable as `model(ids, mask, positions=...) -> logits` (then the lean path and
    return_hidden are unavailable).
    """
    ids, mask, positions = concat_prompt_response(prompt_ids, prompt_mask, response_ids, response_mask)
    Tp = prompt_ids.shape[1]
    N = response_ids.shape[1]
    response_mask = jnp.asarray(response_mask)
    targets = ids[:, Tp:]

    if hasattr(model, "hidden_states") and hasattr(model, "unembed"):
        hidden_all = model.hidden_states(ids, mask, positions)  # [B, Tp+N, H]
        # the token at sequence index Tp+t is predicted from the hidden state at Tp+t-1
        h = hidden_all[:, Tp - 1 : Tp + N - 1]
        if vocab_chunk is None:
            lp = logprobs_plain(model.unembed, h, targets)
        else:
            lp = logprobs_chunked(model.unembed, h, targets, int(vocab_chunk))
    else:
        if return_hidden or vocab_chunk is not None:
            raise ValueError(
                "return_hidden and vocab_chunk need a model with hidden_states() and unembed(); "
                f"{type(model).__name__} has only __call__"
            )
        hidden_all = None
        logits = model(ids, mask, positions=positions)
        lp = token_logprobs(logits[:, Tp - 1 : Tp + N - 1], targets)

    lp = jnp.where(response_mask > 0, lp, 0.0)
    if not return_hidden:
        return lp
    return lp, response_feature(hidden_all, Tp, response_mask, finished)


def response_feature(hidden_all, prompt_len: int, response_mask, finished=None):
    """The encoder feature phi(x, y) [B, H] (at least float32) from final hidden states [B, Tp+N, H].

    The mean of the hidden states at the response's content tokens: every response token except
    a final stop token. `finished` [B] bool says which responses end with a stop token (False:
    cut at max_new_tokens, all tokens are content); None = all do. A response with no content
    token (only the stop token, or empty) takes the state at its last token (the last prompt
    token when empty). The stop token's own state barely depends on the answer (bench/erm_probe.py:
    an ERM on it predicts the oracle at chance; on this mean it learns).
    """
    Tp = int(prompt_len)
    response_mask = jnp.asarray(response_mask) > 0
    N = response_mask.shape[1]
    n = jnp.sum(response_mask, axis=1)  # [B]
    finished = jnp.ones(n.shape, bool) if finished is None else jnp.asarray(finished, bool)
    if finished.shape != n.shape:
        raise ValueError(f"finished must be [B] = {n.shape}, got {finished.shape}")
    content = n - (finished & (n > 0)).astype(n.dtype)
    h = hidden_all.astype(jnp.promote_types(hidden_all.dtype, jnp.float32))
    last = jnp.take_along_axis(h, (Tp + n - 1)[:, None, None], axis=1)[:, 0]  # Tp-1 when empty
    keep = (jnp.arange(N)[None, :] < content[:, None]).astype(h.dtype)[..., None]  # [B, N, 1]
    pooled = jnp.sum(h[:, Tp:] * keep, axis=1) / jnp.maximum(jnp.sum(keep, axis=1), 1.0)
    return jnp.where((content > 0)[:, None], pooled, last)


def centred_token_probs(ref_logprobs, response_mask, max_new_tokens: int) -> np.ndarray:
    """2 p_t - 1 per response position t < N = max_new_tokens, 0 past the response's end: p_t =
    exp(ref_logprobs[..., t]), the frozen starting policy's probability of the t-th token (stop
    token included). Centred without statistics, in [-1, 1]. ref_logprobs and response_mask
    [..., n] with n <= N (shorter responses are padded) -> [..., N] float32."""
    lp, m = np.asarray(ref_logprobs, np.float32), np.asarray(response_mask)
    N, n = int(max_new_tokens), lp.shape[-1]
    if lp.shape != m.shape or n > N:
        raise ValueError(f"centred_token_probs: ref_logprobs {lp.shape} and response_mask {m.shape} must "
                         f"match, with at most max_new_tokens={N} positions")
    probs = np.where(m > 0, 2.0 * np.exp(np.minimum(lp, 0.0)) - 1.0, 0.0)
    return np.pad(probs, [(0, 0)] * (lp.ndim - 1) + [(0, N - n)]).astype(np.float32)


def token_prob_features(hidden_phi, ref_logprobs, response_mask, max_new_tokens: int) -> np.ndarray:
    """`erm.features: hidden_probs`: phi(x, y) = [hidden phi (H), sqrt(H / N) * centred_token_probs].

    sqrt(H / N) gives the N probabilities the weight of the H hidden units (each of unit scale).
    Unweighted, the hidden block dominates the tiny ensembles: on `sort` the concatenation is
    0.63 held-out pair accuracy at 256 labels against 0.74 weighted (bench/erm_probe.py,
    docs/results/probe). hidden_phi [..., H] -> [..., H + N] float32.
    """
    hidden_phi = np.asarray(hidden_phi, np.float32)
    probs = centred_token_probs(ref_logprobs, response_mask, max_new_tokens)
    if hidden_phi.shape[:-1] != probs.shape[:-1]:
        raise ValueError(f"token_prob_features: hidden_phi {hidden_phi.shape} and ref_logprobs "
                         f"{np.shape(ref_logprobs)} must share their leading shape")
    scale = np.float32(np.sqrt(hidden_phi.shape[-1] / probs.shape[-1]))
    return np.concatenate([hidden_phi, scale * probs], -1)


@jax.jit
def embedding_sd(embed):
    """Each unit's sd over the embedding table [V, H] (+ 1e-6): bag_of_words's scale, a statistic
    of the model, none of the task. A constant of a frozen table: compute it once, not per step."""
    return jnp.std(jnp.asarray(embed).astype(jnp.float32), axis=0) + 1e-6


@jax.jit
def bag_of_words(embed, tokens, response_mask, sd):
    """The response's bag of words with its counts: sum over its tokens (stop token included) of
    their input embeddings, each unit divided by `sd`, that unit's sd over the embedding table
    (`embedding_sd(embed)`), [..., N] -> [..., H] float32.

    A reward that adds a term per word (`style`: +1 per topic word, -0.5 per filler word) is
    linear in it; a mean over the response divides it by the length. bench/erm_probe.py,
    docs/results/tuning15: at weight 0.5 beside `hidden_probs` it lifts `style`'s held-out top-1
    from 0.42 to 0.56 and costs `arithmetic` and `sort` at most 0.03 of pair accuracy.
    """
    rows = jnp.take(jnp.asarray(embed), jnp.asarray(tokens), axis=0).astype(jnp.float32)  # only the rows used
    w = (jnp.asarray(response_mask) > 0).astype(jnp.float32)[..., None]
    return jnp.sum(rows * w, axis=-2) / sd


def masked_sum(x, mask):
    """Sum of x over the last axis where mask is set: [..., N] -> [...] (at least float32)."""
    x = jnp.asarray(x)
    x = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    return jnp.sum(jnp.where(jnp.asarray(mask) > 0, x, 0.0), axis=-1)


def masked_mean(x, mask):
    """Length-normalised sum: masked_sum / number of set mask entries (0 for an empty mask)."""
    total = masked_sum(x, mask)
    count = jnp.sum(jnp.asarray(mask) > 0, axis=-1).astype(total.dtype)
    return total / jnp.maximum(count, 1.0)


def sequence_logprob(token_lp, mask, *, average: bool = False):
    """log pi(y | x) as the masked sum of token log-probs, or the per-token mean with `average`."""
    return masked_mean(token_lp, mask) if average else masked_sum(token_lp, mask)

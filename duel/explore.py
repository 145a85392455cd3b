"""Which pair to duel: exploration strategies over an ensemble's rewards (DESIGN.md).

`select_pairs(strategy, rewards, key, **opts)` takes rewards [K, P, M] (members, prompts,
candidates) and returns pairs [P, 2] int32 plus diagnostics. Each strategy is a pure function of
the rewards and of explicit random draws (member indices, uniforms), named as in its paper, so
tests compare it with a NumPy reference; `select_pairs` draws the randomness from `key` and
jits the lot.

Also here: ERM-labelled synthetic pairs for mixed preference learning (SEA), and a BAL-PM-style
prompt selection (Melo et al. 2024).

Duplicates: pass `candidate_ids` [P, M] (equal ids = identical responses) and the second
response is chosen among those that differ from the first; without it every candidate is
distinct. `diag["identical"]` [P] bool flags the pairs that are still identical (the learner
masks them); every other diagnostic is a scalar.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

STRATEGIES = ("passive", "ee_ts", "bai_ts", "uncertainty", "apl", "xpo", "bon_won")

# extra keyword options each strategy accepts (all accept candidate_ids)
_OPTS = {
    "passive": set(),
    "ee_ts": {"max_retries"},
    "bai_ts": set(),
    "uncertainty": set(),
    "apl": {"implicit_rewards", "entropy"},
    "xpo": {"from_reference"},
    "bon_won": set(),
}

_NEG = -jnp.inf


def _take(x: jax.Array, idx: jax.Array) -> jax.Array:
    """x [P, M], idx [P] -> x[p, idx[p]]."""
    return jnp.take_along_axis(x, idx[:, None], axis=1)[:, 0]


def _others(ids: jax.Array, a: jax.Array) -> jax.Array:
    """[P, M] bool: candidates that differ from the chosen first response a [P]."""
    return ids != _take(ids, a)[:, None]


def _argmax_masked(score: jax.Array, mask: jax.Array) -> jax.Array:
    return jnp.argmax(jnp.where(mask, score, _NEG), axis=-1).astype(jnp.int32)


def _best_pair(score: jax.Array, ids: jax.Array) -> tuple[jax.Array, jax.Array]:
    """argmax over (i, j) with ids_i != ids_j of a symmetric score [P, M, M] -> (i, j), i < j."""
    M = score.shape[-1]
    valid = ids[:, :, None] != ids[:, None, :]
    flat = jnp.argmax(jnp.where(valid, score, _NEG).reshape(score.shape[0], M * M), axis=-1)
    return (flat // M).astype(jnp.int32), (flat % M).astype(jnp.int32)


def _diff_variance(r: jax.Array) -> jax.Array:
    """Var_k[r_k(i) - r_k(j)] for all candidate pairs: r [K, P, M] -> [P, M, M]."""
    c = r - jnp.mean(r, axis=0)
    cov = jnp.einsum("kpi,kpj->pij", c, c) / r.shape[0]
    var = jnp.diagonal(cov, axis1=1, axis2=2)
    return var[:, :, None] + var[:, None, :] - 2.0 * cov


# ---- the strategies, as pure functions of rewards and explicit draws ------------------------


def passive(u: jax.Array, ids: jax.Array):
    """Two random distinct candidates. u [2, P, M] uniforms: a = argmax u0, b = argmax u1 (b != a)."""
    a = jnp.argmax(u[0], axis=-1).astype(jnp.int32)
    return a, _argmax_masked(u[1], _others(ids, a))


def thompson_first(r: jax.Array, first_member: jax.Array) -> jax.Array:
    """a = argmax_j r_k(j) under a sampled member k = first_member [P]."""
    r_k = jnp.take_along_axis(r, first_member[None, :, None], axis=0)[0]  # [P, M]
    return jnp.argmax(r_k, axis=-1).astype(jnp.int32)


def ee_ts(r: jax.Array, first_member: jax.Array, other_members: jax.Array, ids: jax.Array):
    """SEA explore & exploit: a under member k; b = argmax under the first of the other members
    other_members [P, R] whose argmax differs from a; if none does, the second best under k."""
    P = r.shape[1]
    a = thompson_first(r, first_member)
    best = jnp.argmax(r, axis=-1)  # [K, P]
    cand = best[other_members, jnp.arange(P)[:, None]]  # [P, R]
    ok = jnp.take_along_axis(ids, cand, axis=1) != _take(ids, a)[:, None]
    retry = jnp.take_along_axis(cand, jnp.argmax(ok, axis=1)[:, None], axis=1)[:, 0]
    r_k = jnp.take_along_axis(r, first_member[None, :, None], axis=0)[0]
    second = _argmax_masked(r_k, _others(ids, a))
    found = jnp.any(ok, axis=1)
    return a, jnp.where(found, retry, second).astype(jnp.int32), found


def bai_ts(r: jax.Array, first_member: jax.Array, ids: jax.Array):
    """SEA best-arm identification: a under member k; b = argmax_j Var_k[r(a) - r(j)]."""
    a = thompson_first(r, first_member)
    r_a = jnp.take_along_axis(r, a[None, :, None], axis=2)  # [K, P, 1]
    var = jnp.var(r_a - r, axis=0)  # [P, M]
    return a, _argmax_masked(var, _others(ids, a))


def uncertainty(r: jax.Array, ids: jax.Array):
    """The pair with the largest ensemble variance of the reward difference."""
    return _best_pair(_diff_variance(r), ids)


def bon_won(r: jax.Array, ids: jax.Array):
    """Best vs worst under the ensemble mean (rejection-sampling pairs)."""
    mean = jnp.mean(r, axis=0)
    a = jnp.argmax(mean, axis=-1).astype(jnp.int32)
    return a, _argmax_masked(-mean, _others(ids, a))


def apl(implicit_rewards: jax.Array, ids: jax.Array):
    """APL (Muldrew et al. 2024) pair choice: the largest implicit-reward margin
    |r_hat(i) - r_hat(j)|, r_hat = beta log pi/pi_ref; a is the higher of the two.
    (APL's predictive entropy ranks prompts: `select_prompts(..., entropy=...)`.)"""
    margin = jnp.abs(implicit_rewards[:, :, None] - implicit_rewards[:, None, :])
    i, j = _best_pair(margin, ids)
    swap = _take(implicit_rewards, j) > _take(implicit_rewards, i)
    return jnp.where(swap, j, i), jnp.where(swap, i, j)


def xpo(from_reference: jax.Array, u: jax.Array, ids: jax.Array):
    """XPO (Xie et al. 2024): a = a random policy sample, b = a random reference sample.
    Falls back to a random distinct candidate where a prompt lacks one of the two kinds."""
    has_pol = jnp.any(~from_reference, axis=1)
    a = jnp.where(has_pol, _argmax_masked(u[0], ~from_reference), jnp.argmax(u[0], axis=-1))
    a = a.astype(jnp.int32)
    others = _others(ids, a)
    ref_ok = from_reference & others
    has_ref = jnp.any(ref_ok, axis=1)
    b = jnp.where(has_ref, _argmax_masked(u[1], ref_ok), _argmax_masked(u[1], others))
    return a, b.astype(jnp.int32), has_pol & has_ref


# ---- select_pairs ---------------------------------------------------------------------------


def pair_diagnostics(r: jax.Array, a: jax.Array, b: jax.Array, ids: jax.Array) -> dict:
    """identical [P]; rates and mean epistemic variances of the chosen pairs (scalars)."""
    r_a = jnp.take_along_axis(r, a[None, :, None], axis=2)[..., 0]  # [K, P]
    r_b = jnp.take_along_axis(r, b[None, :, None], axis=2)[..., 0]
    prefer_a = jnp.mean(r_a > r_b, axis=0)
    identical = _take(ids, a) == _take(ids, b)
    return {
        "identical": identical,
        "identical_rate": jnp.mean(identical),
        "disagreement_rate": jnp.mean((prefer_a > 0) & (prefer_a < 1)),
        "pair_variance": jnp.mean(0.5 * (jnp.var(r_a, axis=0) + jnp.var(r_b, axis=0))),
        "diff_variance": jnp.mean(jnp.var(r_a - r_b, axis=0)),
    }


@functools.partial(jax.jit, static_argnames=("strategy", "max_retries"))
def _select(strategy, r, key, ids, implicit_rewards, entropy, from_reference, max_retries):
    K, P, M = r.shape
    k_first, k_other, k_u = jax.random.split(key, 3)
    first = jax.random.randint(k_first, (P,), 0, K)
    extra = {}
    if strategy == "passive":
        a, b = passive(jax.random.uniform(k_u, (2, P, M)), ids)
    elif strategy == "ee_ts":
        # other members are drawn among the K - 1 that are not `first`
        shift = jax.random.randint(k_other, (P, max_retries), 1, max(K, 2))
        a, b, found = ee_ts(r, first, (first[:, None] + shift) % K, ids)
        extra["ts_fallback_rate"] = 1.0 - jnp.mean(found)
    elif strategy == "bai_ts":
        a, b = bai_ts(r, first, ids)
    elif strategy == "uncertainty":
        a, b = uncertainty(r, ids)
    elif strategy == "bon_won":
        a, b = bon_won(r, ids)
    elif strategy == "apl":
        a, b = apl(implicit_rewards, ids)
        if entropy is not None:
            extra["policy_entropy"] = jnp.mean(entropy)
    elif strategy == "xpo":
        a, b, ok = xpo(from_reference, jax.random.uniform(k_u, (2, P, M)), ids)
        extra["xpo_fallback_rate"] = 1.0 - jnp.mean(ok)
    pairs = jnp.stack([a, b], axis=1).astype(jnp.int32)
    return pairs, {**pair_diagnostics(r, a, b, ids), **extra}


def _as_array(name, x, shape, dtype, strategy):
    if x is None:
        return None
    x = jnp.asarray(x, dtype)
    if x.shape != shape:
        raise ValueError(f"select_pairs({strategy!r}): {name} must be shaped {list(shape)}, got {list(x.shape)}")
    return x


def select_pairs(strategy: str, rewards, key: jax.Array, **opts):
    """Choose the pair to duel for each prompt -> (pairs [P, 2] int32, diagnostics dict).

    rewards: [K, P, M] member rewards of every candidate. opts:
      candidate_ids [P, M] int (all strategies): equal ids mark identical responses.
      max_retries (ee_ts, default 8): other members tried before falling back to the second best.
      implicit_rewards [P, M] (apl, required), entropy [P] or [P, M] (apl, reported).
      from_reference [P, M] bool (xpo, required): candidates sampled from the reference.
    diagnostics: "identical" [P] bool, scalars identical_rate, disagreement_rate, pair_variance,
    diff_variance, plus strategy-specific rates.
    """
    if strategy not in _OPTS:
        raise ValueError(f"unknown exploration strategy {strategy!r}; valid: {', '.join(STRATEGIES)}")
    allowed = _OPTS[strategy] | {"candidate_ids"}
    unknown = set(opts) - allowed
    if unknown:
        raise ValueError(
            f"select_pairs({strategy!r}) got unknown options {sorted(unknown)}; valid: {sorted(allowed)}"
        )
    r = jnp.asarray(rewards, jnp.float32)
    if r.ndim != 3:
        raise ValueError(f"rewards must be shaped [members, prompts, candidates], got {list(r.shape)}")
    K, P, M = r.shape
    if M < 2:
        raise ValueError(f"select_pairs needs at least 2 candidates per prompt, got rewards {list(r.shape)}")
    ids = _as_array("candidate_ids", opts.get("candidate_ids"), (P, M), jnp.int32, strategy)
    ids = jnp.broadcast_to(jnp.arange(M, dtype=jnp.int32), (P, M)) if ids is None else ids
    implicit = _as_array("implicit_rewards", opts.get("implicit_rewards"), (P, M), jnp.float32, strategy)
    if strategy == "apl" and implicit is None:
        raise ValueError("select_pairs('apl') needs implicit_rewards [P, M] (beta * log pi/pi_ref)")
    entropy = opts.get("entropy")
    if entropy is not None:
        entropy = jnp.asarray(entropy, jnp.float32)
        if entropy.shape not in ((P,), (P, M)):
            raise ValueError(f"select_pairs('apl'): entropy must be shaped [{P}] or [{P}, {M}], got {list(entropy.shape)}")
    from_ref = _as_array("from_reference", opts.get("from_reference"), (P, M), jnp.bool_, strategy)
    if strategy == "xpo" and from_ref is None:
        raise ValueError("select_pairs('xpo') needs from_reference [P, M] bool (sampled from the reference)")
    max_retries = int(opts.get("max_retries", 8))
    if max_retries < 1:
        raise ValueError(f"select_pairs('ee_ts'): max_retries must be >= 1, got {max_retries}")
    return _select(strategy, r, key, ids, implicit, entropy, from_ref, max_retries)


# ---- mixed preference learning (SEA) ---------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("by",))
def synthetic_pairs(rewards: jax.Array, key: jax.Array, candidate_ids: jax.Array | None = None,
                    by: str = "member"):
    """ERM-labelled pairs: under a sampled member k (`by="member"`) or the members' mean reward
    (`by="mean"`, `key` unused), a = argmax r and b = argmin r (the largest margin) -> (pairs
    [P, 2] int32, prob_a [P] = mean_k sigma(r_k(a) - r_k(b))). These never go to the oracle;
    count them apart from queries (PairBatch.synthetic)."""
    if by not in ("member", "mean"):
        raise ValueError(f"synthetic_pairs: by must be 'member' or 'mean', got {by!r}")
    r = jnp.asarray(rewards, jnp.float32)
    K, P, M = r.shape
    ids = jnp.broadcast_to(jnp.arange(M), (P, M)) if candidate_ids is None else candidate_ids
    if by == "mean":
        r_k = jnp.mean(r, axis=0)
    else:
        k = jax.random.randint(key, (P,), 0, K)
        r_k = jnp.take_along_axis(r, k[None, :, None], axis=0)[0]
    a = jnp.argmax(r_k, axis=-1).astype(jnp.int32)
    b = _argmax_masked(-r_k, _others(ids, a))
    pairs = jnp.stack([a, b], axis=1)
    return pairs, pair_probs(r, pairs)


@jax.jit
def pair_probs(rewards: jax.Array, pairs: jax.Array) -> jax.Array:
    """The ensemble's P(a > b) for each prompt's pair: rewards [K, P, M], pairs [P, 2] (a, b) ->
    [P] = mean_k sigma(r_k(a) - r_k(b)), the probability `synthetic_pairs` labels with."""
    r = jnp.asarray(rewards, jnp.float32)
    pairs = jnp.asarray(pairs, jnp.int32)
    r_a = jnp.take_along_axis(r, pairs[None, :, 0:1], axis=2)[..., 0]
    r_b = jnp.take_along_axis(r, pairs[None, :, 1:2], axis=2)[..., 0]
    return jnp.mean(jax.nn.sigmoid(r_a - r_b), axis=0)


def synthetic_mask(key: jax.Array, num_prompts: int, gamma: float, step: int, burn_in: int) -> np.ndarray:
    """[P] bool: which prompts the ERM labels. None before `burn_in` steps; after it,
    round(gamma * P) prompts chosen at random, but never all of them when gamma < 1: each call
    (one generator's share of a step) keeps at least one prompt for the oracle. Without that,
    gamma 0.9375 with 8 prompts per generator rounds to 8 of 8: no query is ever paid again, the
    run never spends its budget and the policy learns from the ERM alone (it collapsed)."""
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"mixed preference fraction gamma must be in [0, 1], got {gamma}")
    mask = np.zeros(num_prompts, bool)
    if step < burn_in:
        return mask
    n = int(round(gamma * num_prompts))
    if gamma < 1.0:
        n = min(n, num_prompts - 1)
    mask[np.asarray(jax.random.permutation(key, num_prompts))[:n]] = True
    return mask


# ---- prompt selection -----------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("num",))
def select_prompts(rewards, features, num: int, beta: float = 1.0, seen=None, entropy=None):
    """BAL-PM-style batch of `num` prompts -> indices [num] int32.

    Greedy: score_p = u_p + beta * log(rho_p), u_p the epistemic uncertainty of prompt p (mean
    over candidates of Var_k r, plus the policy's predictive entropy [P] if given, as in APL) and
    rho_p the distance from its features [P, F] to the nearest prompt already acquired (`seen`
    [S, F]) or chosen: a 1-NN estimate of the gain in feature-space entropy (Melo et al. 2024).
    """
    r = jnp.asarray(rewards, jnp.float32)
    x = jnp.asarray(features, jnp.float32)
    P = x.shape[0]
    u = jnp.mean(jnp.var(r, axis=0), axis=-1)
    if entropy is not None:
        u = u + entropy
    dist = jnp.sqrt(jnp.maximum(jnp.sum((x[:, None] - x[None]) ** 2, -1), 0.0))  # [P, P]
    if seen is None:
        rho = jnp.full((P,), jnp.inf)
    else:
        s = jnp.asarray(seen, jnp.float32)
        rho = jnp.min(jnp.sqrt(jnp.sum((x[:, None] - s[None]) ** 2, -1)), axis=1)

    def pick(i, carry):
        rho, chosen, out = carry
        bonus = jnp.where(jnp.isfinite(rho), beta * jnp.log(rho + 1e-6), 0.0)
        p = jnp.argmax(jnp.where(chosen, _NEG, u + bonus))
        return jnp.minimum(rho, dist[p]), chosen.at[p].set(True), out.at[i].set(p)

    init = (rho, jnp.zeros((P,), bool), jnp.zeros((num,), jnp.int32))
    return jax.lax.fori_loop(0, num, pick, init)[2]

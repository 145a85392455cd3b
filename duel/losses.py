"""DPO-family preference losses on sequence log-probabilities.

`preference_loss(kind, pi_chosen, pi_rejected, ref_chosen, ref_rejected, beta, ...)` takes [B]
log-probs of the chosen (y_w) and rejected (y_l) responses under the policy pi and the reference
pi_ref, and returns (loss, metrics). With the log-ratio margin

    h = (log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l))

the per-pair losses, for a pair labelled y_w > y_l, are

    dpo    -log sigmoid(beta h)                                         Rafailov et al. 2023
           label smoothing eps (cDPO, Mitchell 2023): -(1-eps) log s(beta h) - eps log s(-beta h)
    rdpo   [-(1-eps) log s(beta h) + eps log s(-beta h)] / (1 - 2 eps)   Chowdhury et al. 2024,
           unbiased for labels flipped with known rate eps = flip_rate < 1/2
    ipo    (h - 1 / (2 beta))^2                                         Azar et al. 2023 (tau = beta)
    slic   max(0, 1 - beta h)                  hinge, SLiC-HF (Zhao et al. 2023) with delta = 1/beta
                                                on the log-ratio margin as in RSO (Liu et al. 2024);
                                                zero references give SLiC-HF's reference-free form
    simpo  -log sigmoid(beta (log pi(y_w)/|y_w| - log pi(y_l)/|y_l|) - gamma)   Meng et al. 2024,
           no reference, always length-normalised
    xpo    dpo + alpha * log pi(y~)   for y~ a response sampled from the reference     Xie et al. 2024

Any kind + NLL on the chosen response (RPO, Pang et al. 2024 "Iterative Reasoning Preference
Optimization"; Liu et al. 2024): + nll_weight * (-log pi(y_w) / |y_w|), the per-token negative
log-likelihood of the preferred response. It keeps DPO from lowering the likelihood of both
responses and moving the mass to responses never sampled (the "squeezing" of small policies).

Soft labels: with prob = P(y_w > y_l), each loss is the expectation over the label,
prob * l(w > l) + (1 - prob) * l(l > w), where l(l > w) is the same formula with the roles of the
two responses swapped (h -> -h; for simpo gamma keeps its sign). prob = 1 recovers the hard loss.

Per-pair weights (0 masks a pair, e.g. identical responses): loss = sum_i w_i l_i / normalizer,
normalizer = sum_i w_i by default (pass the whole batch's weight when summing micro-batches).
`average=True` divides every log-prob by its response length (chosen_len / rejected_len) first.

Metrics (weighted means, same normalizer): reward_chosen = beta (log pi(y_w) - log pi_ref(y_w)),
reward_rejected, margin = their difference, accuracy = share of pairs with margin > 0, and
kl = mean over both responses of log pi(y) - log pi_ref(y) on the sums (an estimate of
KL(pi || pi_ref) when the responses were sampled from pi).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

KINDS = ("dpo", "rdpo", "ipo", "slic", "simpo", "xpo")
REFERENCE_FREE = ("simpo",)


def _float(x):
    """As an array of at least float32 (float64 stays float64, for gradient checks)."""
    x = jnp.asarray(x)
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _log_sigmoid(z):
    return jax.nn.log_sigmoid(z)


def dpo_loss(h, beta, eps=0.0):
    """-(1-eps) log s(beta h) - eps log s(-beta h), per pair (eps = 0: plain DPO)."""
    return -(1.0 - eps) * _log_sigmoid(beta * h) - eps * _log_sigmoid(-beta * h)


def rdpo_loss(h, beta, eps):
    """Robust DPO for labels flipped with probability eps < 1/2 (Chowdhury et al. 2024, eq. 7)."""
    return (-(1.0 - eps) * _log_sigmoid(beta * h) + eps * _log_sigmoid(-beta * h)) / (1.0 - 2.0 * eps)


def ipo_loss(h, beta):
    """(h - 1/(2 tau))^2 with tau = beta (Azar et al. 2023, eq. 17)."""
    return (h - 1.0 / (2.0 * beta)) ** 2


def slic_loss(h, beta):
    """Hinge on the scaled log-ratio margin: max(0, 1 - beta h)."""
    return jnp.maximum(0.0, 1.0 - beta * h)


def simpo_loss(delta, beta, gamma):
    """-log s(beta delta - gamma), delta = difference of length-normalised policy log-probs."""
    return -_log_sigmoid(beta * delta - gamma)


def _expect(loss_fn, x, prob):
    """prob * l(x) + (1 - prob) * l(-x): the loss in expectation over a soft label."""
    if prob is None:
        return loss_fn(x)
    return prob * loss_fn(x) + (1.0 - prob) * loss_fn(-x)


def preference_loss(
    kind: str,
    pi_chosen,
    pi_rejected,
    ref_chosen=None,
    ref_rejected=None,
    beta: float = 0.1,
    *,
    prob=None,
    weight=None,
    normalizer=None,
    average: bool = False,
    chosen_len=None,
    rejected_len=None,
    label_smoothing: float = 0.0,
    flip_rate: float = 0.0,
    gamma: float = 0.0,
    alpha: float = 0.0,
    pi_ref_sample=None,
    nll_weight: float = 0.0,
):
    """Weighted mean preference loss over a batch of pairs, and metrics (see the module doc).

    pi_*/ref_* [B]: log-prob sums (or means, if the caller averaged). prob [B]: P(chosen > rejected)
    (None = 1). weight [B] (None = 1). chosen_len/rejected_len [B]: response token counts, needed
    for `average` and for simpo. label_smoothing: dpo/xpo eps. flip_rate: rdpo eps. gamma: simpo
    target margin. alpha, pi_ref_sample [B]: xpo bonus weight and log pi of the reference sample.
    nll_weight: weight of the chosen response's per-token NLL (needs chosen_len/rejected_len).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown preference loss kind {kind!r}; valid kinds: {', '.join(KINDS)}")
    pi_chosen = _float(pi_chosen)
    pi_rejected = _float(pi_rejected)
    needs_ref = kind not in REFERENCE_FREE
    if needs_ref and (ref_chosen is None or ref_rejected is None):
        raise ValueError(f"loss kind {kind!r} needs ref_chosen and ref_rejected (only simpo is reference-free)")
    has_ref = ref_chosen is not None and ref_rejected is not None
    if has_ref:
        ref_chosen = _float(ref_chosen)
        ref_rejected = _float(ref_rejected)
    if (average or kind == "simpo" or nll_weight) and (chosen_len is None or rejected_len is None):
        raise ValueError(f"loss kind {kind!r} with average={average} needs chosen_len and rejected_len")
    if kind == "rdpo" and not 0.0 <= flip_rate < 0.5:
        raise ValueError(f"rdpo needs 0 <= flip_rate < 0.5, got {flip_rate}")
    if kind == "xpo" and pi_ref_sample is None:
        raise ValueError("loss kind 'xpo' needs pi_ref_sample (log pi of a response sampled from the reference)")

    # KL estimate on the sums, before any length normalisation
    kl = 0.5 * ((pi_chosen - ref_chosen) + (pi_rejected - ref_rejected)) if has_ref else None
    if nll_weight:  # per-token NLL of each response, before any length normalisation
        nll_w = -pi_chosen / jnp.maximum(_float(chosen_len), 1.0)
        nll_l = -pi_rejected / jnp.maximum(_float(rejected_len), 1.0)

    if average or kind == "simpo":
        n_w = jnp.maximum(_float(chosen_len), 1.0)
        n_l = jnp.maximum(_float(rejected_len), 1.0)
        pi_chosen, pi_rejected = pi_chosen / n_w, pi_rejected / n_l
        if has_ref:
            ref_chosen, ref_rejected = ref_chosen / n_w, ref_rejected / n_l

    if has_ref:
        logratio_w, logratio_l = pi_chosen - ref_chosen, pi_rejected - ref_rejected
    else:  # simpo: rewards are the length-normalised policy log-probs
        logratio_w, logratio_l = pi_chosen, pi_rejected
    h = logratio_w - logratio_l

    if kind == "dpo" or kind == "xpo":
        per_pair = _expect(lambda x: dpo_loss(x, beta, label_smoothing), h, prob)
    elif kind == "rdpo":
        per_pair = _expect(lambda x: rdpo_loss(x, beta, flip_rate), h, prob)
    elif kind == "ipo":
        per_pair = _expect(lambda x: ipo_loss(x, beta), h, prob)
    elif kind == "slic":
        per_pair = _expect(lambda x: slic_loss(x, beta), h, prob)
    else:  # simpo
        delta = pi_chosen - pi_rejected
        per_pair = _expect(lambda x: simpo_loss(x, beta, gamma), delta, prob)
    if kind == "xpo":
        per_pair = per_pair + alpha * _float(pi_ref_sample)
    if nll_weight:  # on the preferred response: in expectation over a soft label
        nll = nll_w if prob is None else prob * nll_w + (1.0 - prob) * nll_l
        per_pair = per_pair + nll_weight * nll

    w = jnp.ones_like(per_pair) if weight is None else _float(weight)
    norm = jnp.maximum(jnp.sum(w), 1e-8) if normalizer is None else _float(normalizer)

    def wmean(x):
        return jnp.sum(w * x) / norm

    reward_w, reward_l = beta * logratio_w, beta * logratio_l
    metrics = {
        "loss": wmean(per_pair),
        "reward_chosen": wmean(reward_w),
        "reward_rejected": wmean(reward_l),
        "margin": wmean(reward_w - reward_l),
        "accuracy": wmean((reward_w > reward_l).astype(per_pair.dtype)),
    }
    if kl is not None:
        metrics["kl"] = wmean(kl)
    if kind == "xpo":
        metrics["xpo_bonus"] = wmean(alpha * _float(pi_ref_sample))
    if nll_weight:
        metrics["nll_chosen"] = wmean(nll_w)
    return metrics["loss"], metrics

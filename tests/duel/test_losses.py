"""Every preference loss equals a plain NumPy transcription of its paper's formula."""

import numpy as np
import pytest

from duel.losses import KINDS, preference_loss


def logsig(z):
    return -np.logaddexp(0.0, -z)


def np_loss(kind, pw, pl, rw, rl, beta, prob, weight, nw, nl, average, eps=0.0, flip=0.0, gamma=0.0, alpha=0.0, ys=None):
    """Per-pair loss straight from the papers, averaged with weights (float64)."""
    if average or kind == "simpo":
        pw, pl, rw, rl = pw / nw, pl / nl, rw / nw, rl / nl
    h = (pw - rw) - (pl - rl)
    if kind in ("dpo", "xpo"):  # Rafailov et al. 2023 eq. 7; cDPO (Mitchell 2023)
        fwd = -(1 - eps) * logsig(beta * h) - eps * logsig(-beta * h)
        bwd = -(1 - eps) * logsig(-beta * h) - eps * logsig(beta * h)
    elif kind == "rdpo":  # Chowdhury et al. 2024, eq. (7)
        fwd = ((1 - flip) * -logsig(beta * h) - flip * -logsig(-beta * h)) / (1 - 2 * flip)
        bwd = ((1 - flip) * -logsig(-beta * h) - flip * -logsig(beta * h)) / (1 - 2 * flip)
    elif kind == "ipo":  # Azar et al. 2023 eq. 17
        fwd = (h - 1 / (2 * beta)) ** 2
        bwd = (-h - 1 / (2 * beta)) ** 2
    elif kind == "slic":  # hinge with delta = 1 / beta
        fwd = np.maximum(0, 1 - beta * h)
        bwd = np.maximum(0, 1 + beta * h)
    elif kind == "simpo":  # Meng et al. 2024 eq. 6
        fwd = -logsig(beta * pw - beta * pl - gamma)
        bwd = -logsig(beta * pl - beta * pw - gamma)
    per = prob * fwd + (1 - prob) * bwd
    if kind == "xpo":  # Xie et al. 2024, Algorithm 1: + alpha * log pi(y~), y~ ~ pi_ref
        per = per + alpha * ys
    return np.sum(weight * per) / np.sum(weight)


@pytest.fixture
def inputs():
    rng = np.random.default_rng(0)
    B = 16
    nw = rng.integers(1, 30, B).astype(np.float64)
    nl = rng.integers(1, 30, B).astype(np.float64)
    # sequence log-probs: sums of nw / nl token log-probs in (-4, 0)
    pw, pl = -rng.uniform(0, 4, B) * nw, -rng.uniform(0, 4, B) * nl
    rw, rl = pw + rng.normal(0, 2, B), pl + rng.normal(0, 2, B)
    prob = rng.uniform(0, 1, B)
    weight = (rng.uniform(size=B) > 0.25).astype(np.float64)  # some pairs masked out
    ys = -rng.uniform(0, 50, B)
    return {"pw": pw, "pl": pl, "rw": rw, "rl": rl, "nw": nw, "nl": nl, "prob": prob, "weight": weight, "ys": ys}


OPTS = {
    "dpo": {"eps": 0.1},
    "rdpo": {"flip": 0.2},
    "ipo": {},
    "slic": {},
    "simpo": {"gamma": 0.7},
    "xpo": {"eps": 0.05, "alpha": 0.3},
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("average", [False, True])
@pytest.mark.parametrize("soft", [False, True])
def test_loss_matches_numpy_formula(inputs, kind, average, soft):
    x = inputs
    prob = x["prob"] if soft else np.ones_like(x["prob"])
    o = OPTS[kind]
    beta = 0.3 if kind != "simpo" else 2.0
    want = np_loss(kind, x["pw"], x["pl"], x["rw"], x["rl"], beta, prob, x["weight"], x["nw"], x["nl"], average, ys=x["ys"], **o)
    got, metrics = preference_loss(
        kind,
        x["pw"].astype(np.float32),
        x["pl"].astype(np.float32),
        x["rw"].astype(np.float32),
        x["rl"].astype(np.float32),
        beta,
        prob=prob if soft else None,
        weight=x["weight"],
        average=average,
        chosen_len=x["nw"],
        rejected_len=x["nl"],
        label_smoothing=o.get("eps", 0.0),
        flip_rate=o.get("flip", 0.0),
        gamma=o.get("gamma", 0.0),
        alpha=o.get("alpha", 0.0),
        pi_ref_sample=x["ys"],
    )
    # float32 inputs of magnitude ~100: compare relative to the loss scale
    np.testing.assert_allclose(float(got), want, rtol=1e-6, atol=1e-6 * max(1.0, abs(want)))
    assert float(metrics["loss"]) == float(got)


def test_soft_label_half_is_symmetric_and_hard_label_is_dpo(inputs):
    x = inputs
    half, _ = preference_loss("dpo", x["pw"], x["pl"], x["rw"], x["rl"], 0.5, prob=np.full(16, 0.5))
    swapped, _ = preference_loss("dpo", x["pl"], x["pw"], x["rl"], x["rw"], 0.5, prob=np.full(16, 0.5))
    np.testing.assert_allclose(float(half), float(swapped), rtol=1e-6)
    h = (x["pw"] - x["rw"]) - (x["pl"] - x["rl"])
    np.testing.assert_allclose(float(preference_loss("dpo", x["pw"], x["pl"], x["rw"], x["rl"], 0.5)[0]),
                               np.mean(-logsig(0.5 * h)), rtol=1e-6)


def test_metrics_match_definitions(inputs):
    x = inputs
    beta, w = 0.2, x["weight"]
    _, m = preference_loss("dpo", x["pw"], x["pl"], x["rw"], x["rl"], beta, weight=w)
    rw_, rl_ = beta * (x["pw"] - x["rw"]), beta * (x["pl"] - x["rl"])

    def wm(v):
        return np.sum(w * v) / np.sum(w)

    np.testing.assert_allclose(float(m["reward_chosen"]), wm(rw_), rtol=1e-5)
    np.testing.assert_allclose(float(m["reward_rejected"]), wm(rl_), rtol=1e-5)
    np.testing.assert_allclose(float(m["margin"]), wm(rw_ - rl_), rtol=1e-5)
    np.testing.assert_allclose(float(m["accuracy"]), wm((rw_ > rl_).astype(float)), rtol=1e-6)
    kl = 0.5 * ((x["pw"] - x["rw"]) + (x["pl"] - x["rl"]))
    np.testing.assert_allclose(float(m["kl"]), wm(kl), rtol=1e-5)


def test_masked_pairs_do_not_count_and_normalizer_sums(inputs):
    x = inputs
    w = x["weight"]
    full, _ = preference_loss("ipo", x["pw"], x["pl"], x["rw"], x["rl"], 0.1, weight=w)
    keep = w > 0
    sub, _ = preference_loss("ipo", x["pw"][keep], x["pl"][keep], x["rw"][keep], x["rl"][keep], 0.1)
    np.testing.assert_allclose(float(full), float(sub), rtol=1e-6)
    # two halves with the whole batch's normalizer add up to the whole
    a, _ = preference_loss("ipo", x["pw"][:8], x["pl"][:8], x["rw"][:8], x["rl"][:8], 0.1, weight=w[:8], normalizer=w.sum())
    b, _ = preference_loss("ipo", x["pw"][8:], x["pl"][8:], x["rw"][8:], x["rl"][8:], 0.1, weight=w[8:], normalizer=w.sum())
    np.testing.assert_allclose(float(a + b), float(full), rtol=1e-6)


def test_bad_input_names_the_problem():
    z = np.zeros(2)
    with pytest.raises(ValueError, match="valid kinds: dpo, rdpo, ipo, slic, simpo, xpo"):
        preference_loss("kto", z, z, z, z, 0.1)
    with pytest.raises(ValueError, match="needs ref_chosen"):
        preference_loss("dpo", z, z, None, None, 0.1)
    with pytest.raises(ValueError, match="chosen_len"):
        preference_loss("simpo", z, z, beta=2.0)
    with pytest.raises(ValueError, match="flip_rate"):
        preference_loss("rdpo", z, z, z, z, 0.1, flip_rate=0.5)
    with pytest.raises(ValueError, match="pi_ref_sample"):
        preference_loss("xpo", z, z, z, z, 0.1, alpha=0.1)


@pytest.mark.parametrize("kind", ["dpo", "ipo"])
@pytest.mark.parametrize("soft", [False, True])
def test_nll_on_chosen_adds_the_per_token_nll(inputs, kind, soft):
    """RPO (Pang et al. 2024): loss + w * (-log pi(y_w) / |y_w|), in expectation over a soft label."""
    i = inputs
    prob = i["prob"] if soft else np.ones_like(i["prob"])
    base = np_loss(kind, i["pw"], i["pl"], i["rw"], i["rl"], 0.2, prob, i["weight"], i["nw"], i["nl"], False)
    nll = prob * (-i["pw"] / i["nw"]) + (1 - prob) * (-i["pl"] / i["nl"])
    want = base + 0.7 * np.sum(i["weight"] * nll) / np.sum(i["weight"])
    loss, m = preference_loss(kind, i["pw"], i["pl"], i["rw"], i["rl"], 0.2, prob=prob if soft else None,
                              weight=i["weight"], chosen_len=i["nw"], rejected_len=i["nl"], nll_weight=0.7)
    np.testing.assert_allclose(float(loss), want, rtol=1e-5)
    np.testing.assert_allclose(float(m["nll_chosen"]),
                               np.sum(i["weight"] * -i["pw"] / i["nw"]) / np.sum(i["weight"]), rtol=1e-5)
    with pytest.raises(ValueError, match="needs chosen_len"):
        preference_loss(kind, i["pw"], i["pl"], i["rw"], i["rl"], 0.2, nll_weight=0.7)

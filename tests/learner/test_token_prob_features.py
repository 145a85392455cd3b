"""erm.features: hidden_probs: phi(x, y) = [hidden phi, sqrt(H / N) (2 p_t - 1) per response position].

The pure function against a loop transcription; the generator's PairBatch features are the plain
hidden features followed by the starting policy's per-token probabilities of the same samples; the
learner's ERM is H + max_new_tokens wide and learns from them.
"""

import dataclasses
import math

import numpy as np
import pytest

from actors.generator import GeneratorCore, GeneratorSpec
from duel.config import ConfigError, validate
from duel.logprobs import token_prob_features
from tests.helpers.tiny import tiny_config, tiny_model_dir
from tests.learner.test_gold_features import _prompts, _publish, check_learner_learns_from_features

N_NEW = 4


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("probs") / "policy", seed=0, hidden=16)


def test_token_prob_features_against_a_loop():
    rng = np.random.default_rng(0)
    hid = rng.normal(size=(2, 3, 5)).astype(np.float32)
    lp = np.log(rng.uniform(0.01, 1.0, size=(2, 3, 4))).astype(np.float32)
    mask = np.array([[[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]],
                     [[1, 1, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1]]], np.int32)
    got = token_prob_features(hid, lp, mask, max_new_tokens=6)
    assert got.shape == (2, 3, 5 + 6) and got.dtype == np.float32
    for p in range(2):
        for m in range(3):
            want = list(hid[p, m])
            for t in range(6):
                on = t < 4 and mask[p, m, t] > 0
                want.append(math.sqrt(5 / 6) * (2 * math.exp(lp[p, m, t]) - 1) if on else 0.0)
            np.testing.assert_allclose(got[p, m], want, rtol=1e-5, atol=1e-6)
    # a sure token is +scale, a token of probability 1/2 is 0, past the end 0
    one = token_prob_features(np.zeros((1, 4)), np.log([[1.0, 0.5, 0.3]]), np.array([[1, 1, 0]]), 3)
    np.testing.assert_allclose(one[0, 4:], [math.sqrt(4 / 3), 0.0, 0.0], atol=1e-6)


def test_token_prob_features_refuses_bad_shapes():
    with pytest.raises(ValueError, match="max_new_tokens=2"):
        token_prob_features(np.zeros((1, 3)), np.zeros((1, 4)), np.ones((1, 4)), 2)
    with pytest.raises(ValueError, match="must match"):
        token_prob_features(np.zeros((1, 3)), np.zeros((1, 4)), np.ones((1, 3)), 4)
    with pytest.raises(ValueError, match="leading shape"):
        token_prob_features(np.zeros((2, 3)), np.zeros((1, 4)), np.ones((1, 4)), 4)


def test_generator_features_are_hidden_then_token_probs(policy):
    cfg = tiny_config(policy, **{"erm.features": "hidden_probs", "sampling.max_new_tokens": N_NEW})
    validate(cfg)
    spec = GeneratorSpec.from_config(cfg)
    assert spec.token_probs and not GeneratorSpec.from_config(tiny_config(policy)).token_probs
    core = GeneratorCore(policy, spec)
    plain = GeneratorCore(policy, dataclasses.replace(spec, token_probs=False))
    core.load(_publish(core, 1, 16 + N_NEW), 1)
    plain.load(_publish(plain, 1, 16), 1)
    batch = _prompts(core, ["1+2=", "13+4=", "7+7=", "20+9="])
    pb, base = core.step(batch, 1, 1), plain.step(batch, 1, 1)
    c, b = pb.candidates, base.candidates
    np.testing.assert_array_equal(c.tokens, b.tokens)  # the same samples: only phi changed
    assert c.features.shape == (4, 4, 16 + N_NEW)
    np.testing.assert_array_equal(c.features[..., :16], b.features)
    n = c.ref_logprobs.shape[-1]
    probs = np.where(c.mask > 0, 2 * np.exp(c.ref_logprobs) - 1, 0.0) * math.sqrt(16 / N_NEW)
    np.testing.assert_allclose(c.features[..., 16:16 + n], probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(c.features[..., 16 + n:], 0.0)
    assert np.abs(c.features[..., 16:]).max() > 0


def test_learner_erm_is_wider_and_learns_from_them(policy, tmp_path):
    cfg = tiny_config(policy, **{"erm.features": "hidden_probs", "sampling.max_new_tokens": N_NEW})
    check_learner_learns_from_features(policy, cfg, tmp_path / "probs", 16 + N_NEW)


def test_unknown_feature_kind_is_refused(policy):
    with pytest.raises(ConfigError, match="erm.features"):
        validate(tiny_config(policy, **{"erm.features": "probs"}))

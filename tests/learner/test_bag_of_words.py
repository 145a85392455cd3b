"""erm.features: hidden_probs_words: phi(x, y) = [hidden_probs phi, w * bag of words], the bag of
words being the sum of the response tokens' input embeddings over the table's per-unit sd.

The pure function against a loop transcription; the generator's PairBatch features are
`hidden_probs`'s followed by the bag of words of the same samples at `erm.words_weight`; the
learner's ERM is H + max_new_tokens + H wide and learns from them.
"""

import dataclasses

import numpy as np
import pytest

from actors.generator import GeneratorCore, GeneratorSpec
from duel.config import ConfigError, validate
from duel.logprobs import bag_of_words, embedding_sd
from tests.helpers.tiny import tiny_config, tiny_model_dir
from tests.learner.test_gold_features import _prompts, _publish, check_learner_learns_from_features

N_NEW = 4
H = 16


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("words") / "policy", seed=0, hidden=H)


def test_bag_of_words_against_a_loop():
    rng = np.random.default_rng(0)
    embed = rng.normal(size=(7, 3)).astype(np.float32) * np.array([1.0, 0.1, 5.0], np.float32)
    tokens = np.array([[[1, 1, 4, 0], [6, 2, 0, 0]], [[0, 0, 0, 0], [3, 5, 5, 5]]], np.int32)
    mask = np.array([[[1, 1, 1, 0], [1, 1, 0, 0]], [[0, 0, 0, 0], [1, 1, 1, 1]]], np.int32)
    got = np.asarray(bag_of_words(embed, tokens, mask, embedding_sd(embed)))
    assert got.shape == (2, 2, 3) and got.dtype == np.float32
    sd = np.array([np.sqrt(np.mean((embed[:, j] - embed[:, j].mean()) ** 2)) + 1e-6 for j in range(3)])
    for p in range(2):
        for m in range(2):
            want = [sum(embed[tokens[p, m, t], j] for t in range(4) if mask[p, m, t]) / sd[j] for j in range(3)]
            np.testing.assert_allclose(got[p, m], want, rtol=1e-5, atol=1e-5)
    # counts: a word twice weighs twice; order does not matter; an empty response is 0
    np.testing.assert_allclose(got[0, 0], 2 * embed[1] / sd + embed[4] / sd, rtol=1e-5)
    np.testing.assert_array_equal(got[1, 0], 0.0)


def test_generator_features_are_hidden_probs_then_words(policy):
    cfg = tiny_config(policy, **{"erm.features": "hidden_probs_words", "erm.words_weight": 0.5,
                                 "sampling.max_new_tokens": N_NEW})
    validate(cfg)
    spec = GeneratorSpec.from_config(cfg)
    assert spec.token_probs and spec.words_weight == 0.5
    probs_spec = GeneratorSpec.from_config(tiny_config(policy, **{"erm.features": "hidden_probs",
                                                                  "sampling.max_new_tokens": N_NEW}))
    assert probs_spec.words_weight is None
    core = GeneratorCore(policy, spec)
    probs = GeneratorCore(policy, dataclasses.replace(spec, words_weight=None))
    core.load(_publish(core, 1, 2 * H + N_NEW), 1)
    probs.load(_publish(probs, 1, H + N_NEW), 1)
    batch = _prompts(core, ["1+2=", "13+4=", "7+7=", "20+9="])
    pb, base = core.step(batch, 1, 1), probs.step(batch, 1, 1)
    c, b = pb.candidates, base.candidates
    np.testing.assert_array_equal(c.tokens, b.tokens)  # the same samples: only phi changed
    assert c.features.shape == (4, 4, 2 * H + N_NEW)
    np.testing.assert_array_equal(c.features[..., :H + N_NEW], b.features)
    e = np.asarray(core.encoder.embed[...], np.float32)
    sd = e.std(0) + 1e-6
    np.testing.assert_allclose(np.asarray(core.words_sd), sd, rtol=1e-5)  # held by the generator, once
    assert probs.words_sd is None
    want = np.zeros((4, 4, H), np.float32)
    for p in range(4):
        for m in range(4):
            for t in range(c.tokens.shape[-1]):
                if c.mask[p, m, t]:
                    want[p, m] += e[c.tokens[p, m, t]] / sd
    np.testing.assert_allclose(c.features[..., H + N_NEW:], 0.5 * want, rtol=1e-4, atol=1e-4)
    assert np.abs(want).max() > 0


def test_learner_erm_is_wider_and_learns_from_them(policy, tmp_path):
    cfg = tiny_config(policy, **{"erm.features": "hidden_probs_words", "sampling.max_new_tokens": N_NEW})
    check_learner_learns_from_features(policy, cfg, tmp_path / "words", 2 * H + N_NEW)


def test_a_negative_weight_is_refused(policy):
    with pytest.raises(ConfigError, match="erm.words_weight"):
        validate(tiny_config(policy, **{"erm.features": "hidden_probs_words", "erm.words_weight": -1.0}))

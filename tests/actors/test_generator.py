"""The generator: loads published weights, refuses other versions, samples M, selects a pair."""

import numpy as np
import pytest

from actors.generator import GeneratorCore, StaleWeights
from duel.loop_utils import flat_weights
from duel.records import PromptBatch
from tests.learner.tiny import tiny_model_dir

SPEC = {"seed": 3, "candidates": 4, "strategy": "ee_ts", "max_new_tokens": 5}


@pytest.fixture(scope="module")
def core(tmp_path_factory):
    return GeneratorCore(tiny_model_dir(tmp_path_factory.mktemp("m") / "tiny"), SPEC)


def _prompts(core, texts, step=0, index=0):
    from duel.data import encode_prompts

    batch, _ = encode_prompts(core.tokenizer, [{"id": f"r{i}", "prompt": t} for i, t in enumerate(texts)])
    return PromptBatch(prompt_ids=batch.prompt_ids, texts=batch.texts, input_ids=batch.input_ids,
                       attention_mask=batch.attention_mask, step=step, index=index)


def _weights(core, version, scale=1.0):
    import jax
    from flax import nnx

    from duel.ensemble import ERM, ERMConfig

    state = jax.tree.map(lambda x: x * scale, nnx.state(core.encoder, nnx.Param))
    erm = ERM(core.model_config.hidden_size, ERMConfig(num_members=3, hidden=(8,)), jax.random.key(0))
    return {"version": version, "policy": flat_weights(state), "erm": erm.params, "checksum": f"v{version}"}


def test_refuses_to_sample_with_another_version(core):
    core.load(_weights(core, 4), 4)
    batch = _prompts(core, ["1+2=", "3+4="])
    with pytest.raises(StaleWeights, match="holds weights version 4 but was asked to sample with version 5"):
        core.step(batch, 5, 0)
    with pytest.raises(StaleWeights):
        core.load(_weights(core, 6), 7)  # the object must hold the version it is loaded as
    assert core.info()["version"] == 4


def test_step_samples_scores_and_selects(core):
    from duel.sampling import score

    core.load(_weights(core, 1), 1)
    batch = _prompts(core, ["1+2=", "13+4=", "7+7="], step=2, index=30)
    pb = core.step(batch, 1, 2)
    c = pb.candidates
    assert c.version == pb.version == 1
    assert c.tokens.shape == (3, 4, 5) and c.features.shape == (3, 4, core.model_config.hidden_size)
    assert pb.pair_ids == ["s2-i30", "s2-i31", "s2-i32"]
    assert pb.pairs.shape == (3, 2) and (pb.pairs >= 0).all() and (pb.pairs < 4).all()
    assert not pb.synthetic.any()
    # reference log-probs and features are the frozen model's score pass on the candidates
    sc = score(core.encoder, np.repeat(batch.input_ids, 4, 0), np.repeat(batch.attention_mask, 4, 0),
               c.tokens.reshape(12, 5), c.mask.reshape(12, 5))
    np.testing.assert_allclose(c.ref_logprobs.reshape(12, 5), np.asarray(sc.logprobs), atol=1e-5)
    np.testing.assert_allclose(c.features.reshape(12, -1), np.asarray(sc.hidden), atol=1e-5)
    # the policy equals the reference at version 1: sampling and frozen log-probs agree
    np.testing.assert_allclose(c.policy_logprobs * c.mask, c.ref_logprobs * c.mask, atol=1e-4)
    # same step, same prompts -> the same candidates and pairs (keys derive from seed and step)
    again = core.step(batch, 1, 2)
    np.testing.assert_array_equal(again.candidates.tokens, c.tokens)
    np.testing.assert_array_equal(again.pairs, pb.pairs)
    other = core.step(batch, 1, 3)
    assert not np.array_equal(other.candidates.tokens, c.tokens)


def test_loaded_weights_change_the_samples(core):
    batch = _prompts(core, ["1+2=", "13+4="])
    core.load(_weights(core, 1), 1)
    a = core.step(batch, 1, 0)
    core.load(_weights(core, 2, scale=0.0), 2)  # all-zero policy: uniform next-token distribution
    b = core.step(batch, 2, 0)
    vocab = core.model_config.vocab_size
    lp = b.candidates.policy_logprobs[b.candidates.mask == 1]
    np.testing.assert_allclose(lp, -np.log(vocab), atol=1e-5)
    assert not np.allclose(a.candidates.policy_logprobs, b.candidates.policy_logprobs)
    # the frozen reference did not move
    ref = b.candidates.ref_logprobs[b.candidates.mask == 1]
    assert np.abs(ref + np.log(vocab)).max() > 0.1

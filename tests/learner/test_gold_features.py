"""erm.features: gold (a diagnostic): phi(x, y) = the task's gold reward of the response.

The generator's PairBatch features are the gold rewards of its decoded candidates (the same
samples as without the key), the learner's ERM takes width 1 and learns from them, and the key
is refused without the task's simulated oracle or beside erm.encoder.
"""

import dataclasses

import jax
import numpy as np
import pytest

from actors.generator import GeneratorCore, GeneratorSpec
from duel.config import ConfigError, validate
from duel.records import LabeledBatch, PromptBatch
from duel.sampling import SamplingParams
from duel.tasks import get_task
from tests.helpers.tiny import TINY_TASK, tiny_config, tiny_model_dir

SPEC = GeneratorSpec(seed=3, candidates=4, strategy="ee_ts", sampling=SamplingParams(max_new_tokens=4))


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("gold") / "policy", seed=0, hidden=16)


def _prompts(core, texts):
    from duel.data import encode_prompts

    batch, _ = encode_prompts(core.tokenizer, [{"id": f"r{i}", "prompt": t} for i, t in enumerate(texts)])
    return PromptBatch(prompt_ids=batch.prompt_ids, texts=batch.texts, input_ids=batch.input_ids,
                       attention_mask=batch.attention_mask, step=1, index=0)


def _publish(core, version, features):
    from flax import nnx

    from duel.ensemble import ERM, ERMConfig
    from duel.transport import LocalTransport, host

    erm = ERM.create(features, ERMConfig(num_members=3, hidden=(8,)), jax.random.key(0))
    return LocalTransport().put(nnx.state(core.encoder, nnx.Param), version, {"erm": host(erm.params)})


def test_generator_features_are_the_gold_rewards(policy):
    cfg = tiny_config(policy, **{"erm.features": "gold"})
    spec = GeneratorSpec.from_config(cfg, sampling=SPEC.sampling)
    assert spec.gold_task == TINY_TASK and GeneratorSpec.from_config(tiny_config(policy)).gold_task is None
    core = GeneratorCore(policy, spec)
    plain = GeneratorCore(policy, dataclasses.replace(spec, gold_task=None))
    core.load(_publish(core, 1, 1), 1)
    plain.load(_publish(plain, 1, 16), 1)
    batch = _prompts(core, ["1+2=", "13+4=", "7+7=", "20+9="])
    pb, base = core.step(batch, 1, 1), plain.step(batch, 1, 1)
    c = pb.candidates
    np.testing.assert_array_equal(c.tokens, base.candidates.tokens)  # the same samples: only phi changed
    assert c.features.shape == (4, 4, 1) and base.candidates.features.shape == (4, 4, 16)
    task = get_task(TINY_TASK)
    want = [[task.gold_reward(p, y) for y in ys] for p, ys in zip(batch.texts, c.texts)]
    np.testing.assert_array_equal(c.features[..., 0], np.asarray(want, np.float32))
    assert len(np.unique(c.features)) > 1  # the untrained policy's answers differ in reward


def check_learner_learns_from_features(policy, cfg, learner_dir, width):
    """The learner's ERM and replay buffer are `width` wide; after one update on a passive
    generator's step the buffer holds exactly the labelled pairs' features and the ERM moved."""
    from learner.learner import Learner

    lrn = Learner(cfg, policy, learner_dir)
    assert lrn.feature_dim == width and lrn.buffer.fa.shape[1] == width
    core = GeneratorCore(policy, GeneratorSpec.from_config(cfg, strategy="passive"))
    core.load(_publish(core, 0, width), 0)
    pb = core.step(_prompts(core, ["1+2=", "13+4=", "7+7=", "20+9="]), 0, 0)
    rows = np.flatnonzero(~pb.identical)
    assert len(rows) >= 2
    before = jax.tree.leaves(lrn.erm.params)
    lrn.update(LabeledBatch(pb, np.full(4, 0.7, np.float32), np.ones(4, np.int8), [{} for _ in range(4)]), 0)
    f = pb.candidates.features
    np.testing.assert_array_equal(lrn.buffer.fa[:len(rows)], f[rows, pb.pairs[rows, 0]])
    np.testing.assert_array_equal(lrn.buffer.fb[:len(rows)], f[rows, pb.pairs[rows, 1]])
    assert any(np.abs(np.asarray(a) - np.asarray(b)).max() > 0 for a, b in zip(before, jax.tree.leaves(lrn.erm.params)))


def test_learner_erm_is_one_wide_and_learns_from_gold(policy, tmp_path):
    cfg = tiny_config(policy, **{"erm.features": "gold"})
    check_learner_learns_from_features(policy, cfg, tmp_path / "gold", 1)


@pytest.mark.parametrize("over, word", [({"oracle.kind": "rule", "oracle.options": {"reward": "x"}}, "'rule'"),
                                        ({"erm.encoder": "/some/encoder"}, "/some/encoder")])
def test_gold_features_need_the_tasks_oracle_and_no_encoder(policy, over, word):
    with pytest.raises(ConfigError, match="erm.features") as e:
        validate(tiny_config(policy, **{"erm.features": "gold", **over}))
    assert word in str(e.value)
    validate(tiny_config(policy, **{"erm.features": "gold"}))  # the task's oracle: fine

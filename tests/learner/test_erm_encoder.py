"""erm.encoder: the features phi(x, y) come from another frozen model (here of another width).

The generator loads the encoder directory, the PairBatch features have its width and equal its
response feature computed directly (not through duel.propose/score), the reference log-probs
stay the starting policy's; the learner's ERM takes the encoder's width and learns from those
features; unset, nothing changes; a bad directory or another tokenizer is refused before Ray.
"""

import dataclasses
import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from actors.generator import GeneratorCore, GeneratorSpec
from duel.config import ConfigError
from duel.records import LabeledBatch, PromptBatch
from duel.sampling import SamplingParams
from duel.transport import LocalTransport, host
from tests.helpers.tiny import tiny_config, tiny_model_dir

SPEC = GeneratorSpec(seed=3, candidates=4, strategy="ee_ts", sampling=SamplingParams(max_new_tokens=5))
POLICY_H, ENCODER_H = 16, 24


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("enc")
    return (tiny_model_dir(root / "policy", seed=0, hidden=POLICY_H),
            tiny_model_dir(root / "encoder", seed=7, hidden=ENCODER_H, layers=2))


def _prompts(core, texts, step=0, index=0):
    from duel.data import encode_prompts

    batch, _ = encode_prompts(core.tokenizer, [{"id": f"r{i}", "prompt": t} for i, t in enumerate(texts)])
    return PromptBatch(prompt_ids=batch.prompt_ids, texts=batch.texts, input_ids=batch.input_ids,
                       attention_mask=batch.attention_mask, step=step, index=index)


def _publish(core, version, features: int):
    """The learner's publish: the starting policy's weights and an ERM over `features`."""
    from flax import nnx

    from duel.ensemble import ERM, ERMConfig

    erm = ERM.create(features, ERMConfig(num_members=3, hidden=(8,)), jax.random.key(0))
    return LocalTransport().put(nnx.state(core.encoder, nnx.Param), version, {"erm": host(erm.params)})


def _direct_feature(model, prompt_ids, prompt_mask, tokens, mask, finished):
    """phi by hand: final hidden states of [prompt | response], duel.logprobs.response_feature."""
    from duel.logprobs import concat_prompt_response, response_feature

    x, xm, pos = concat_prompt_response(prompt_ids, prompt_mask, tokens, mask)
    return np.asarray(response_feature(model.hidden_states(x, xm, pos), prompt_ids.shape[1], mask, finished))


def test_generator_takes_features_from_the_encoder(dirs):
    from duel.models import load_pretrained
    from duel.sampling import score

    policy, encoder = dirs
    plain = GeneratorCore(policy, SPEC)
    core = GeneratorCore(policy, dataclasses.replace(SPEC, encoder=encoder))
    assert plain.feature_encoder is None and core.feature_encoder is not None
    core.load(_publish(core, 1, ENCODER_H), 1)
    plain.load(_publish(plain, 1, POLICY_H), 1)
    batch = _prompts(core, ["1+2=", "13+4=", "7+7="], step=2, index=30)
    pb, base = core.step(batch, 1, 2), plain.step(batch, 1, 2)
    c = pb.candidates
    assert c.features.shape == (3, 4, ENCODER_H) and base.candidates.features.shape == (3, 4, POLICY_H)
    # the same samples and reference log-probs as without the key: only phi changed
    np.testing.assert_array_equal(c.tokens, base.candidates.tokens)
    np.testing.assert_array_equal(c.ref_logprobs, base.candidates.ref_logprobs)
    n = c.mask.reshape(12, 5).sum(1)
    finished = (n > 0) & np.isin(c.tokens.reshape(12, 5)[np.arange(12), np.maximum(n - 1, 0)],
                                 core.sampling.stop_token_ids)
    assert finished.any() and (n > 1).any()  # the stop token is left out of some features
    ids, pm = np.repeat(batch.input_ids, 4, 0), np.repeat(batch.attention_mask, 4, 0)
    enc, cfg = load_pretrained(encoder, dtype=jnp.float32)
    assert cfg.hidden_size == ENCODER_H
    want = _direct_feature(enc, ids, pm, c.tokens.reshape(12, 5), c.mask.reshape(12, 5), finished)
    np.testing.assert_allclose(c.features.reshape(12, -1), want, atol=1e-5)
    assert np.abs(want).max() > 0.1
    # the reference log-probs are the starting policy's, not the encoder's
    ref = score(core.encoder, ids, pm, c.tokens.reshape(12, 5), c.mask.reshape(12, 5), finished=finished)
    np.testing.assert_allclose(c.ref_logprobs.reshape(12, 5), np.asarray(ref.logprobs), atol=1e-5)
    other = score(enc, ids, pm, c.tokens.reshape(12, 5), c.mask.reshape(12, 5), finished=finished)
    assert np.abs(np.asarray(other.logprobs) - np.asarray(ref.logprobs)).max() > 0.1


def test_learner_erm_takes_the_encoder_width_and_its_features(dirs, tmp_path):
    from learner.learner import Learner

    policy, encoder = dirs
    assert Learner(tiny_config(policy), policy, tmp_path / "plain").feature_dim == POLICY_H
    lrn = Learner(tiny_config(policy, **{"erm.encoder": encoder}), policy, tmp_path / "enc")
    assert lrn.feature_dim == ENCODER_H and lrn.buffer.fa.shape[1] == ENCODER_H
    assert [x.shape for x in jax.tree.leaves(lrn.erm.params)] == [(4, 8), (4, ENCODER_H, 8), (4, 1), (4, 8, 1)]
    # a generator step's features go into the ERM's replay buffer and train it
    core = GeneratorCore(policy, dataclasses.replace(SPEC, encoder=encoder, strategy="passive"))
    core.load(_publish(core, 0, ENCODER_H), 0)
    pb = core.step(_prompts(core, ["1+2=", "13+4=", "7+7=", "20+9="]), 0, 0)
    real = ~pb.identical
    assert real.sum() >= 2
    before = jax.tree.leaves(lrn.erm.params)
    prob = np.full(4, 0.7, np.float32)
    label = np.array([1, 0, 1, 1], np.int8)
    m = lrn.update(LabeledBatch(pb, prob, label, [{} for _ in range(4)]), 0)
    rows = np.flatnonzero(real)
    f = pb.candidates.features
    np.testing.assert_array_equal(lrn.buffer.fa[:len(rows)], f[rows, pb.pairs[rows, 0]])
    np.testing.assert_array_equal(lrn.buffer.fb[:len(rows)], f[rows, pb.pairs[rows, 1]])
    assert len(lrn.buffer) == len(rows) and np.isfinite(m["erm_nll"])
    assert any(np.abs(np.asarray(a) - np.asarray(b)).max() > 0 for a, b in zip(before, jax.tree.leaves(lrn.erm.params)))


def test_bad_encoder_is_refused_before_ray(dirs, tmp_path):
    from duel.tasks.tokenizer import build_tokenizer, save_tokenizer
    from learner.setup import check_encoder, prepare_inputs

    policy, encoder = dirs
    check_encoder(tiny_config(policy, **{"erm.encoder": encoder}), policy)  # fits: no error
    check_encoder(tiny_config(policy), policy)  # unset: nothing to check
    gone = tmp_path / "gone"
    cfg = tiny_config(policy, **{"erm.encoder": str(gone)})
    with pytest.raises(ConfigError, match=rf"key 'erm.encoder' \('{gone}'\): .*\(it does not exist\)"):
        prepare_inputs(cfg, tmp_path / "run", resume=False)
    assert not (tmp_path / "run").exists()  # nothing written
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    shutil.copy(f"{encoder}/config.json", no_weights)
    with pytest.raises(ConfigError, match=rf"key 'erm.encoder' .*'{no_weights}' does not load as a model: .*no safetensors"):
        check_encoder(tiny_config(policy, **{"erm.encoder": str(no_weights)}), policy)
    wide = tmp_path / "wide"  # config.json says another width than the weights
    shutil.copytree(encoder, wide)
    c = json.loads((wide / "config.json").read_text())
    (wide / "config.json").write_text(json.dumps({**c, "intermediate_size": 40}))
    with pytest.raises(ConfigError, match=r"does not load as a model: tensor .* has shape .*expected"):
        check_encoder(tiny_config(policy, **{"erm.encoder": str(wide)}), policy)
    other = tmp_path / "other_tok"  # the same model with another tokenizer
    shutil.copytree(encoder, other)
    save_tokenizer(build_tokenizer(list("0123456789+="), level="char"), other)
    cfg = tiny_config(policy, **{"erm.encoder": str(other)})
    with pytest.raises(ConfigError, match=rf"key 'erm.encoder' .*: {other}/tokenizer.json differs from the "
                                          rf"policy's {policy}/tokenizer.json \(in .*model.*; vocab \d+ vs \d+ entries\)"):
        prepare_inputs(cfg, tmp_path / "run", resume=False)
    (other / "tokenizer.json").unlink()
    with pytest.raises(ConfigError, match="has no tokenizer.json"):
        check_encoder(cfg, policy)


@pytest.mark.slow
def test_loop_runs_with_an_encoder(dirs, tmp_path):
    import ray

    from duel.ledger import Ledger
    from duel.metrics import read_metrics
    from learner.loop import run_experiment
    from tests.helpers.tiny import start_ray

    policy, encoder = dirs
    start_ray()
    try:
        res = run_experiment(tiny_config(policy, steps=2, **{"erm.encoder": encoder}), tmp_path)
    finally:
        ray.shutdown()
    assert res["step"] == 2 and res["queries"] == 8
    rows = read_metrics(tmp_path, "train")
    assert len(rows) == 2 and all(np.isfinite(r["erm_nll"]) for r in rows)
    assert len(Ledger(tmp_path, readonly=True).entries()) == 8

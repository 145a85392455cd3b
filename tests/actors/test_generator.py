"""The generator: loads published weights, refuses other versions, samples M, selects a pair."""

import dataclasses

import numpy as np
import pytest

from actors.generator import GeneratorCore, GeneratorSpec, StaleWeights
from duel.digest import checksum as digest
from duel.digest import flat_weights
from duel.records import PromptBatch
from duel.sampling import SamplingParams
from duel.transport import LocalTransport, host
from tests.helpers.tiny import tiny_model_dir

SPEC = GeneratorSpec(seed=3, candidates=4, strategy="ee_ts", sampling=SamplingParams(max_new_tokens=5))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("m") / "tiny")


@pytest.fixture(scope="module")
def core(model_dir):
    return GeneratorCore(model_dir, SPEC)


def _prompts(core, texts, step=0, index=0):
    from duel.data import encode_prompts

    batch, _ = encode_prompts(core.tokenizer, [{"id": f"r{i}", "prompt": t} for i, t in enumerate(texts)])
    return PromptBatch(prompt_ids=batch.prompt_ids, texts=batch.texts, input_ids=batch.input_ids,
                       attention_mask=batch.attention_mask, step=step, index=index)


def _weights(core, version, scale=1.0, checksum=True, dtype=None):
    """What the learner publishes: a Packed of the policy (here the encoder's params times
    `scale`) with the ERM params and the digest of the weights in extras."""
    import jax
    from flax import nnx

    from duel.ensemble import ERM, ERMConfig

    state = jax.tree.map(lambda x: x * scale, nnx.state(core.encoder, nnx.Param))
    erm = ERM.create(core.model_config.hidden_size, ERMConfig(num_members=3, hidden=(8,)), jax.random.key(0))
    extras = {"erm": host(erm.params), "checksum": digest(flat_weights(state)) if checksum else ""}
    return LocalTransport(dtype, bucket_bytes=4096).put(state, version, extras)


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
    assert not pb.synthetic.any() and not c.from_reference.any()  # ee_ts: all from the policy
    # reference log-probs and features are the frozen model's score pass on the candidates; the
    # feature leaves out the stop token of the responses that end with one (not of those cut at 5)
    n = c.mask.reshape(12, 5).sum(1)
    finished = (n > 0) & np.isin(c.tokens.reshape(12, 5)[np.arange(12), np.maximum(n - 1, 0)],
                                 core.sampling.stop_token_ids)
    sc = score(core.encoder, np.repeat(batch.input_ids, 4, 0), np.repeat(batch.attention_mask, 4, 0),
               c.tokens.reshape(12, 5), c.mask.reshape(12, 5), finished=finished)
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


def test_xpo_marks_the_reference_samples_and_pairs_one_with_a_policy_sample(core, model_dir):
    xpo = GeneratorCore(model_dir, dataclasses.replace(SPEC, strategy="xpo"))
    xpo.load(_weights(core, 1, scale=0.5), 1)  # policy != reference: their samples differ
    batch = _prompts(xpo, ["1+2=", "13+4=", "7+7="])
    pb = xpo.step(batch, 1, 0)
    c = pb.candidates
    np.testing.assert_array_equal(c.from_reference, np.tile([False, False, True, True], (3, 1)))
    rows = np.arange(3)
    assert (~c.from_reference[rows, pb.pairs[:, 0]]).all() and c.from_reference[rows, pb.pairs[:, 1]].all()
    # the marked candidates are the reference's: their sampling log-probs are the frozen pass's
    np.testing.assert_allclose((c.policy_logprobs * c.mask)[:, 2:], (c.ref_logprobs * c.mask)[:, 2:], atol=1e-4)
    assert not np.allclose((c.policy_logprobs * c.mask)[:, :2], (c.ref_logprobs * c.mask)[:, :2], atol=1e-2)


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


def test_load_installs_the_published_bytes_and_checks_them(core):
    import jax
    import jax.numpy as jnp
    from flax import nnx

    w = _weights(core, 8, scale=0.5)
    assert len(w.buffers) > 1  # a real bucketed publish, not one blob
    assert core.load(w, 8) == w.extras["checksum"] and core.info()["version"] == 8
    got = jax.tree.leaves(nnx.state(core.policy, nnx.Param))
    want = jax.tree.leaves(jax.tree.map(lambda x: x * 0.5, nnx.state(core.encoder, nnx.Param)))
    assert len(got) == len(want) > 3
    for a, b in zip(got, want):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    F = core.model_config.hidden_size  # ERM: 3 members, features F -> 8 -> 1
    assert [x.shape for x in jax.tree.leaves(core.erm_params)] == [(3, 8), (3, F, 8), (3, 1), (3, 8, 1)]
    assert all(isinstance(x, np.ndarray) for x in jax.tree.leaves(core.erm_params))  # host arrays
    # the digest is of what was installed: a wrong one is refused
    bad = _weights(core, 9, scale=0.25)
    bad.extras["checksum"] = w.extras["checksum"]
    with pytest.raises(RuntimeError, match="version 9 with checksum"):
        core.load(bad, 9)
    # bf16 weights into this float32 generator: cast on install, round to nearest even
    core.load(_weights(core, 10, checksum=False, dtype=jnp.bfloat16), 10)
    a = jax.tree.leaves(nnx.state(core.policy, nnx.Param))[0]
    b = jax.tree.leaves(nnx.state(core.encoder, nnx.Param))[0]
    assert a.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b.astype(jnp.bfloat16).astype(jnp.float32)))


def test_load_refuses_weights_of_another_model(core):
    import jax
    from flax import nnx

    state = nnx.state(core.encoder, nnx.Param)
    leaves, treedef = jax.tree.flatten(state)
    wrong = jax.tree.unflatten(treedef, [x[..., :1] if i == 1 else x for i, x in enumerate(leaves)])
    name = LocalTransport().put(state, 0).spec.names[1]
    with pytest.raises(ValueError, match=f"published weights '{name}': shape"):
        core.load(LocalTransport(None).put(wrong, 11, {"erm": {}}), 11)


def test_generate_key_is_the_step_key():
    """The generator's jitted key is bit-identical to duel.keys.step_key (determinism)."""
    import jax

    from actors.generator import generate_key
    from duel.keys import KEY_GENERATE, step_key

    for seed, step, index in [(0, 0, 0), (0, 5, 40), (123, 77, 1000), (2**31 - 1, 3, 8), (2**31 + 5, 3, 8)]:
        want = np.asarray(jax.random.key_data(step_key(seed, step, KEY_GENERATE, index)))
        got = np.asarray(jax.random.key_data(generate_key(seed, step, index)))
        assert want.dtype == got.dtype and np.array_equal(want, got), (seed, step, index)


def test_mixed_preference_uses_only_labels_the_ensemble_is_sure_of(core, model_dir):
    """mixed.min_confidence: an ERM label with max(P, 1 - P) below it is not used; the prompt
    goes to the oracle with the strategy's pair ("ask") or carries no label ("drop", P = NaN)."""
    batch = _prompts(core, [f"{i}+{j}=" for i in range(1, 5) for j in (2, 7)])  # 8 prompts
    mixed = dataclasses.replace(SPEC, gamma=0.5, burn_in=0)

    def step(**changes):
        g = GeneratorCore(model_dir, dataclasses.replace(mixed, **changes))
        g.load(_weights(core, 1, scale=0.7), 1)
        return g.step(batch, 1, 0)

    plain, sea = step(gamma=0.0), step()
    assert sea.synthetic.sum() == 4 and np.isfinite(sea.synthetic_prob[sea.synthetic]).all()
    assert sea.diagnostics["erm_unsure"] == 0.0
    conf = np.maximum(sea.synthetic_prob, 1 - sea.synthetic_prob)
    threshold = float(np.median(conf[sea.synthetic]))  # between the ERM's sure and unsure labels
    sure_rows = sea.synthetic & (conf >= threshold)
    assert 0 < sure_rows.sum() < 4, conf  # both kinds present
    ask = step(min_confidence=threshold, unconfident="ask")
    drop = step(min_confidence=threshold, unconfident="drop")
    np.testing.assert_array_equal(sea.candidates.tokens, plain.candidates.tokens)  # same samples
    # ask: the unsure prompts are paid, with the strategy's pair (the pair without mixing)
    np.testing.assert_array_equal(ask.synthetic, sure_rows)
    np.testing.assert_array_equal(ask.pairs[~sure_rows], plain.pairs[~sure_rows])
    np.testing.assert_array_equal(ask.pairs[sure_rows], sea.pairs[sure_rows])
    np.testing.assert_array_equal(ask.synthetic_prob[sure_rows], sea.synthetic_prob[sure_rows])
    # drop: the ERM's prompts stay off the oracle; the unsure ones carry no label
    np.testing.assert_array_equal(drop.synthetic, sea.synthetic)
    np.testing.assert_array_equal(drop.pairs, sea.pairs)
    unsure = sea.synthetic & ~sure_rows
    assert np.isnan(drop.synthetic_prob[unsure]).all()
    np.testing.assert_array_equal(drop.synthetic_prob[sure_rows], sea.synthetic_prob[sure_rows])
    share = unsure.sum() / 4
    assert ask.diagnostics["erm_unsure"] == drop.diagnostics["erm_unsure"] == share


def test_mixed_pair_mean_labels_the_best_and_worst_under_the_members_mean(core, model_dir):
    """mixed.pair: mean reaches the generator (GeneratorSpec.from_config) and its synthetic rows
    hold the argmax / argmin of the members' mean reward of their candidates' features."""
    from duel.config import load_config
    from duel.ensemble import rewards

    cfg = load_config(None, ["mixed.pair=mean", "mixed.gamma=0.5"])
    assert GeneratorSpec.from_config(cfg).synthetic_by == "mean"
    assert GeneratorSpec.from_config(load_config(None, [])).synthetic_by == "member"
    batch = _prompts(core, [f"{i}+{j}=" for i in range(1, 5) for j in (2, 7)])  # 8 prompts
    g = GeneratorCore(model_dir, dataclasses.replace(SPEC, gamma=0.5, burn_in=0, synthetic_by="mean"))
    g.load(_weights(core, 1, scale=0.7), 1)
    pb = g.step(batch, 1, 0)
    assert pb.synthetic.sum() == 4
    mean = np.asarray(rewards(g.erm_params, pb.candidates.features)).mean(axis=0)  # [P, M]
    rows = np.flatnonzero(pb.synthetic)
    r = mean[rows]
    a, b = pb.pairs[rows, 0], pb.pairs[rows, 1]
    np.testing.assert_allclose(r[np.arange(len(rows)), a], r.max(axis=1), rtol=1e-6)
    np.testing.assert_allclose(r[np.arange(len(rows)), b], r.min(axis=1), rtol=1e-6)

"""LoRA adapters (duel.models.lora): only the adapters train, the step equals the merged-weights
step, the base with adapters off is the reference, and the exports load in transformers / peft."""

import importlib.util

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from duel.models import ModelConfig, Transformer, build_model, load_pretrained, save_pretrained
from duel.models import lora
from duel.train import (
    TrainConfig,
    init_train_state,
    make_optimizer,
    model_from_state,
    pair_loss,
    split_model,
    train_step,
)
from tests.helpers.pairs import pair_tensors

V, B, TP, N = 61, 4, 5, 4
CFG = TrainConfig(loss="dpo", beta=1.0, lr=1e-2, clip_norm=10.0, eps=1e-3)
SPEC = lora.LoraSpec(rank=3, alpha=6.0, targets=lora.TARGETS)


def config(**kw):
    base = dict(family="llama", vocab_size=V, hidden_size=16, num_layers=2, num_heads=4, num_kv_heads=2,
                head_dim=4, intermediate_size=24, max_position_embeddings=64)
    return ModelConfig(**{**base, **kw})


def random_adapters(spec, c, seed):
    """A and B both random (a fresh adapter has B = 0, which would hide errors in A's path)."""
    rng = np.random.default_rng(seed)
    return {n: (0.3 * rng.standard_normal(s)).astype(np.float32) for n, s in lora.adapter_shapes(spec, c).items()}


def lora_model(spec=SPEC, seed=1, adapters_seed=2, c=None):
    c = c or config()
    model = build_model(c, seed=seed)
    return lora.attach(model, spec, adapters=None if adapters_seed is None else random_adapters(spec, c, adapters_seed))


def pairs(seed=0, b=B):
    return pair_tensors(seed, b, V, TP, N, soft=False)


def frozen(model):
    return {k: np.array(v) for k, v in model.params().items()}


# ---------------------------------------------------------------- what trains


def test_only_the_adapters_train_and_the_base_stays_bit_for_bit():
    model = lora_model(adapters_seed=None)  # a fresh adapter: B = 0
    base_before = frozen(model)
    state = init_train_state(model, CFG)
    names = {"/".join(map(str, p)) for p, _ in state.params.flat_state()}
    want = {n.replace(".", "/") for n in lora.adapter_shapes(SPEC, model.config)}
    assert names == want  # the trained params are exactly the adapters (14 = 7 targets x A, B)
    adapter_size = sum(int(np.prod(s)) for s in lora.adapter_shapes(SPEC, model.config).values())
    moments = sum(x.size for x in jax.tree.leaves(state.opt_state) if x.ndim > 0)
    assert moments == 2 * adapter_size  # AdamW holds mu and nu of the adapters only
    before = {k: np.array(v) for k, v in lora.adapters(model_from_state(state)).items()}  # state is donated
    losses = []
    for step in range(3):
        state, m = train_step(state, pairs(step), CFG)
        losses.append(float(m["loss"]))
    after = model_from_state(state)
    for k, v in frozen(after).items():
        np.testing.assert_array_equal(v, base_before[k], err_msg=k)  # bit for bit
    moved = lora.adapters(after)
    assert all(np.abs(np.asarray(moved[k]) - before[k]).max() > 0 for k in moved)  # every adapter moved
    assert all(np.abs(np.asarray(moved[k])).max() > 1e-3 for k in moved if k.endswith("_lora_b"))  # B left 0
    assert losses[2] != losses[0]


def _merged_model(c, base, adapters, scale):
    """An explicitly merged plain model, W + scale * A @ B, written out per layer (not lora.delta)."""
    params = dict(base)
    for name in {k[len("layers."):-len("_lora_a")] for k in adapters if k.endswith("_lora_a")}:
        a, b = adapters[f"layers.{name}_lora_a"], adapters[f"layers.{name}_lora_b"]
        w = base[f"layers.{name}"]
        per = []
        for i in range(c.num_layers):
            ai = a[i].reshape(-1, a.shape[-1])  # [in, r]
            bi = b[i].reshape(b.shape[1], -1)  # [r, out]
            per.append(w[i] + scale * (ai @ bi).reshape(w.shape[1:]))
        params[f"layers.{name}"] = jnp.stack(per)
    return Transformer(c, params)


def test_a_lora_dpo_step_equals_the_step_on_merged_weights():
    c = config()
    model = lora_model()
    base = {k: jnp.asarray(v) for k, v in frozen(model).items()}
    adapters = {k: jnp.asarray(v) for k, v in lora.adapters(model).items()}
    batch = jax.tree.map(jnp.asarray, pairs(5))
    norm = jnp.sum(batch.weight)

    state, metrics = train_step(init_train_state(model, CFG), batch, CFG)
    got = lora.adapters(model_from_state(state))

    def merged_loss(ad):  # the loss of the plain model with W + s A B, as a function of (A, B)
        g, p, r = split_model(_merged_model(c, base, ad, SPEC.scale))
        return pair_loss(p, g, r, batch, CFG, norm)[0]

    loss, grads = jax.value_and_grad(merged_loss)(adapters)
    tx = make_optimizer(CFG)
    updates, _ = tx.update(grads, tx.init(adapters), adapters)
    want = optax.apply_updates(adapters, updates)
    assert float(metrics["loss"]) == pytest.approx(float(loss), abs=1e-5)
    assert float(metrics["grad_norm"]) == pytest.approx(float(optax.global_norm(grads)), rel=1e-5)
    for k in want:
        np.testing.assert_allclose(np.asarray(got[k]), np.asarray(want[k]), atol=1e-5, rtol=0, err_msg=k)
    assert max(float(jnp.abs(want[k] - adapters[k]).max()) for k in want) > 1e-3  # the step moved them


def test_the_base_with_adapters_off_is_the_reference_and_shares_its_arrays():
    c = config()
    plain = build_model(c, seed=1)
    ids = np.random.default_rng(0).integers(1, V, (2, 7)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[0, :3] = 0
    want = np.asarray(plain(ids, mask))
    fresh = lora.attach(build_model(c, seed=1), SPEC)  # B = 0
    np.testing.assert_array_equal(np.asarray(fresh(ids, mask)), want)  # exactly the base
    trained = lora_model()
    assert np.abs(np.asarray(trained(ids, mask)) - want).max() > 1e-3
    base = lora.base_model(trained)
    np.testing.assert_array_equal(np.asarray(base(ids, mask)), want)
    for k, v in base.params().items():  # no second copy of the weights
        assert v.unsafe_buffer_pointer() == trained.params()[k].unsafe_buffer_pointer(), k


def test_lora_forward_matches_merge_and_gpt_neox_targets():
    for c, spec in [(config(attention_bias=True), SPEC),
                    (ModelConfig(family="gpt_neox", vocab_size=V, hidden_size=16, num_layers=2, num_heads=4,
                                 num_kv_heads=4, head_dim=4, intermediate_size=24, max_position_embeddings=64,
                                 rotary_dim=2), lora.LoraSpec(rank=2, alpha=2.0, targets=("o", "up", "down")))]:
        model = lora.attach(build_model(c, seed=3), spec, adapters=random_adapters(spec, c, 4))
        ids = np.random.default_rng(1).integers(1, V, (2, 6)).astype(np.int32)
        mask = np.ones_like(ids)
        got = np.asarray(model(ids, mask))
        want = np.asarray(_merged_model(c, frozen(model), lora.adapters(model), spec.scale)(ids, mask))
        np.testing.assert_allclose(got, want, atol=2e-5)
        np.testing.assert_allclose(np.asarray(lora.merge(model)(ids, mask)), want, atol=2e-5)


def test_dropout_is_keyed_by_the_step_and_off_outside_training():
    spec = lora.LoraSpec(rank=3, alpha=6.0, dropout=0.5)
    cfg = CFG
    runs = []
    for s in (spec, spec, SPEC):
        state = init_train_state(lora_model(s), cfg)
        out = []
        for step in range(2):
            state, m = train_step(state, pairs(step), cfg)
            out.append(float(m["loss"]))
        runs.append(out)
    assert runs[0] == runs[1]  # deterministic: keyed by (seed, step)
    assert runs[0][0] != pytest.approx(runs[2][0], abs=1e-4)  # dropout changes the step
    ids = np.ones((1, 4), np.int32)
    a, b = lora_model(spec), lora_model(SPEC)  # same adapters: no dropout when not training
    np.testing.assert_array_equal(np.asarray(a(ids, ids)), np.asarray(b(ids, ids)))


def test_bad_targets_fail_naming_the_target():
    with pytest.raises(ValueError, match=r"unknown LoRA target.*'qq'.*valid targets: q, k, v, o, gate, up, down"):
        lora.LoraSpec(rank=2, targets=("q", "qq"))
    c = ModelConfig(family="gpt_neox", vocab_size=V, hidden_size=16, num_layers=1, num_heads=4, num_kv_heads=4,
                    head_dim=4, intermediate_size=24, max_position_embeddings=64, rotary_dim=2)
    with pytest.raises(ValueError, match=r"LoRA target 'q' does not exist in a gpt_neox model.*fuses.*o, up, down"):
        lora.attach(build_model(c), lora.LoraSpec(rank=2, targets=("q",)))
    from duel.config import ConfigError
    from launch.presets import load_config

    with pytest.raises(ConfigError, match=r"key 'policy.lora.targets'.*'gat'.*did you mean 'gate'"):
        load_config("demo", ["policy.lora.rank=4", "policy.lora.targets=[q, gat]"])
    cfg = load_config("demo", ["policy.lora.rank=8"])
    assert lora.from_config(cfg.policy) == lora.LoraSpec(rank=8, alpha=16.0, dropout=0.0, targets=lora.TARGETS)
    assert lora.from_config(load_config("demo").policy) is None


# ---------------------------------------------------------------- exports


VARIANTS = ["llama3", pytest.param("qwen3", marks=pytest.mark.slow), pytest.param("gemma3", marks=pytest.mark.slow)]


def _trained_from_hf(tmp_path, variant="llama3"):
    H = pytest.importorskip("tests.helpers.models")
    base_dir = tmp_path / "base"
    H.hf_model(variant).save_pretrained(base_dir, safe_serialization=True)
    model, c = load_pretrained(base_dir)
    spec = lora.LoraSpec(rank=4, alpha=8.0)
    lora.attach(model, spec, adapters=random_adapters(spec, c, 7))
    rng = np.random.default_rng(0)
    ids, mask, _ = H.left_padded_batch(rng, [7, 4, 9], 9)
    return H, base_dir, model, c, ids, mask


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_merged_export_loads_in_transformers_with_the_same_logits(tmp_path, variant):
    H, _, model, c, ids, mask = _trained_from_hf(tmp_path, variant)
    out = tmp_path / "merged"
    save_pretrained(lora.merge(model), c, out)
    import torch
    import transformers

    hf = transformers.AutoModelForCausalLM.from_pretrained(out, torch_dtype=torch.float32).eval()
    want = np.asarray(model(ids.astype(np.int32), mask.astype(np.int32)))
    with torch.no_grad():
        got = hf(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
    real = mask.astype(bool)
    assert np.abs(got[real] - want[real]).max() <= 1e-4
    assert np.abs(want - np.asarray(lora.base_model(model)(ids, mask))).max() > 1e-2  # adapters matter


@pytest.mark.skipif(importlib.util.find_spec("peft") is None,
                    reason="peft is not installed (pip install peft): the PEFT export is not loaded")
@pytest.mark.parametrize("variant", VARIANTS)
def test_the_peft_adapter_directory_loads_with_peft_on_the_base(tmp_path, variant):
    H, base_dir, model, c, ids, mask = _trained_from_hf(tmp_path, variant)
    out = lora.save_peft(model, tmp_path / "adapter", base_model_path=str(base_dir))
    import peft
    import torch
    import transformers

    base = transformers.AutoModelForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32)
    hf = peft.PeftModel.from_pretrained(base, out).eval()
    assert hf.peft_config["default"].r == 4 and hf.peft_config["default"].lora_alpha == 8.0
    want = np.asarray(model(ids.astype(np.int32), mask.astype(np.int32)))
    with torch.no_grad():
        got = hf(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
    real = mask.astype(bool)
    assert np.abs(got[real] - want[real]).max() <= 1e-4


def test_cached_decode_with_adapters_equals_the_full_forward():
    model = lora_model()
    ids = np.random.default_rng(3).integers(1, V, (2, 7)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, :2] = 0  # left padding
    want = np.asarray(model(ids, mask))
    positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0).astype(np.int32)
    cache = model.init_cache(2, 7)
    logits, _, cache = model.forward_cached(ids[:, :4], positions[:, :4], cache, np.pad(mask[:, :4], ((0, 0), (0, 3))), 0)
    steps = [np.asarray(logits)]
    for t in range(4, 7):  # one token at a time against the cache
        cm = np.pad(mask[:, : t + 1], ((0, 0), (0, 6 - t)))
        logits, _, cache = model.forward_cached(ids[:, t : t + 1], positions[:, t : t + 1], cache, cm, t)
        steps.append(np.asarray(logits))
    got = np.concatenate(steps, axis=1)
    real = mask.astype(bool)
    np.testing.assert_allclose(got[real], want[real], atol=2e-5)

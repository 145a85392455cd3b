"""Hugging Face I/O: sharded safetensors both ways, bf16, config round trip, tokenizer, clear errors."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax.numpy as jnp
import numpy as np
import pytest
import transformers
from safetensors.numpy import load_file, save_file

from duel.models import (
    ModelConfig,
    Transformer,
    load_pretrained,
    param_shapes,
    save_pretrained,
)
from duel.tasks import load_tokenizer  # duel's one tokenizer loader

from tests.helpers import models as H  # noqa: E402

TINY = ModelConfig(
    family="llama",
    vocab_size=33,
    hidden_size=16,
    num_layers=2,
    num_heads=2,
    num_kv_heads=1,
    head_dim=8,
    intermediate_size=24,
    architecture="LlamaForCausalLM",
)


def _random_model(config, seed=0):
    rng = np.random.default_rng(seed)
    return Transformer(
        config,
        {
            n: (0.2 * rng.standard_normal(s)).astype(np.float32)
            for n, s in param_shapes(config).items()
        },
    )


def test_sharded_safetensors_both_ways(tmp_path):
    hf = H.hf_model("llama3", seed=3)
    hf.save_pretrained(tmp_path / "hf", max_shard_size="20KB")  # transformers' sharded layout
    assert (tmp_path / "hf" / "model.safetensors.index.json").is_file()
    assert len(list((tmp_path / "hf").glob("model-*.safetensors"))) > 2
    model, config = load_pretrained(tmp_path / "hf")
    ids, mask, pos = H.left_padded_batch(np.random.default_rng(0), [7, 4], 7)
    want = H.hf_forward(hf, ids, mask, pos)
    real = mask.astype(bool)
    assert np.abs(np.asarray(H.jit_forward(model)(ids, mask)) - want)[real].max() <= 1e-4

    save_pretrained(model, config, tmp_path / "duel", max_shard_bytes=16_000)  # ours, sharded
    index = json.loads((tmp_path / "duel" / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 2
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "duel").eval()
    assert np.abs(H.hf_forward(reloaded, ids, mask, pos) - want)[real].max() <= 1e-6
    again, _ = load_pretrained(tmp_path / "duel")
    for name, x in model.params().items():
        np.testing.assert_array_equal(np.asarray(again.params()[name]), np.asarray(x), err_msg=name)


@pytest.mark.parametrize("variant", ["qwen2", "pythia"])
def test_bfloat16_forward_within_bf16_tolerance(variant, tmp_path):
    H.hf_model(variant, seed=5).save_pretrained(tmp_path)
    m32, _ = load_pretrained(tmp_path, dtype=jnp.float32)
    m16, _ = load_pretrained(tmp_path, dtype=jnp.bfloat16)
    assert all(x.dtype == jnp.bfloat16 for x in m16.params().values())
    ids, mask, _ = H.left_padded_batch(np.random.default_rng(0), [8, 5, 2], 8)
    l32 = np.asarray(H.jit_forward(m32)(ids, mask))
    l16 = H.jit_forward(m16)(ids, mask)
    assert l16.dtype == jnp.bfloat16  # logits in the compute dtype
    l16 = np.asarray(l16.astype(jnp.float32))
    real = mask.astype(bool)
    err = np.abs(l16 - l32)[real]
    scale = np.abs(l32[real]).max()
    assert np.isfinite(l16).all()
    assert 0 < err.max() <= 0.05 * scale  # really computed in bf16, and close to float32
    # the argmax token agrees almost everywhere
    assert (l16.argmax(-1) == l32.argmax(-1))[real].mean() >= 0.9


def test_bf16_save_round_trip(tmp_path):
    model = Transformer(
        TINY, {k: v.astype(jnp.bfloat16) for k, v in _random_model(TINY).params().items()}
    )
    save_pretrained(model, TINY, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["dtype"] == "bfloat16"
    again, config = load_pretrained(tmp_path, dtype=jnp.bfloat16)
    assert config == TINY
    for name, x in model.params().items():
        np.testing.assert_array_equal(np.asarray(again.params()[name]), np.asarray(x), err_msg=name)


@pytest.mark.parametrize("variant", ["qwen2", "llama3", "pythia", "mistral_window"])
def test_config_round_trip(variant):
    hf_cfg = H.VARIANTS[variant]()
    config = ModelConfig.from_hf(hf_cfg.to_dict())
    assert ModelConfig.from_hf(config.to_hf()) == config
    back = transformers.AutoConfig.for_model(
        **{k: v for k, v in config.to_hf().items() if k != "model_type"},
        model_type=config.model_type,
    )
    assert ModelConfig.from_hf(back.to_dict()) == config
    hash(config)  # static attribute of the module: must be hashable


def test_config_values_from_hf():
    c = ModelConfig.from_hf(H.VARIANTS["pythia"]().to_dict())
    assert (c.family, c.head_dim, c.rotary_dim, c.parallel_residual, c.attention_bias) == (
        "gpt_neox",
        16,
        4,
        True,
        True,
    )
    c = ModelConfig.from_hf(H.VARIANTS["llama3"]().to_dict())
    assert (
        c.rope_scaling["rope_type"] == "llama3"
        and c.rope_theta == 500000.0
        and not c.tie_word_embeddings
    )
    c = ModelConfig.from_hf(H.VARIANTS["qwen2"]().to_dict())
    assert c.attention_bias and c.tie_word_embeddings and c.model_type == "qwen2" and not c.out_bias
    # transformers 4 layout: rope_theta / rope_scaling / rotary_pct at the top level
    old = {
        "architectures": ["GPTNeoXForCausalLM"],
        "model_type": "gpt_neox",
        "vocab_size": 10,
        "hidden_size": 8,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 16,
        "rotary_pct": 0.5,
        "rotary_emb_base": 1000,
    }
    c = ModelConfig.from_hf(old)
    assert (c.rotary_dim, c.rope_theta) == (2, 1000.0)


def test_tokenizer_from_model_directory(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": 0, "<eos>": 1, "hello": 2, "world": 3, "[UNK]": 4}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>"
    )
    save_pretrained(_random_model(TINY), TINY, tmp_path, tokenizer=fast)
    loaded = load_tokenizer(tmp_path)
    assert loaded("hello world zzz")["input_ids"] == [2, 3, 4]
    assert loaded.pad_token_id == 0 and loaded.eos_token_id == 1
    with pytest.raises(FileNotFoundError, match="expected tokenizer.json"):
        load_tokenizer(tmp_path / "missing")


# ------------------------------------------------------------------------------ errors


def _save_tiny(path):
    save_pretrained(_random_model(TINY), TINY, path)
    return path


def test_unknown_architecture_names_file_and_supported(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps({"architectures": ["BertForMaskedLM"], "model_type": "bert"})
    )
    with pytest.raises(ValueError) as e:
        load_pretrained(tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "config.json") in msg and "BertForMaskedLM" in msg
    assert "LlamaForCausalLM" in msg and "GPTNeoXForCausalLM" in msg


def test_unsupported_rope_type_is_clear(tmp_path):
    d = _save_tiny(tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["rope_parameters"] = {"rope_type": "yarn", "factor": 4.0, "rope_theta": 10000.0}
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="rope type 'yarn' not supported"):
        load_pretrained(d)


def test_missing_config_and_missing_safetensors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(TINY.to_hf()))
    with pytest.raises(FileNotFoundError) as e:
        load_pretrained(tmp_path)
    assert str(tmp_path) in str(e.value) and "model.safetensors" in str(e.value)
    (tmp_path / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(FileNotFoundError, match="pickled weights are never read"):
        load_pretrained(tmp_path)


def test_shape_mismatch_names_file_tensor_and_shapes(tmp_path):
    d = _save_tiny(tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    cfg["intermediate_size"] = 32  # the file holds 24
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError) as e:
        load_pretrained(d)
    msg = str(e.value)
    assert str(d / "model.safetensors") in msg
    assert "model.layers.0.mlp.gate_proj.weight" in msg and "(24, 16)" in msg and "(32, 16)" in msg


def test_missing_tensor_names_file_and_tensor(tmp_path):
    d = _save_tiny(tmp_path)
    tensors = load_file(d / "model.safetensors")
    del tensors["model.layers.1.self_attn.k_proj.weight"]
    save_file(tensors, d / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError) as e:
        load_pretrained(d)
    msg = str(e.value)
    assert str(d / "model.safetensors") in msg and "model.layers.1.self_attn.k_proj.weight" in msg


def test_missing_shard_is_named(tmp_path):
    d = tmp_path
    save_pretrained(_random_model(TINY), TINY, d, max_shard_bytes=4_000)
    shard = max(d.glob("model-*.safetensors"))
    shard.unlink()
    with pytest.raises(FileNotFoundError, match=shard.name):
        load_pretrained(d)

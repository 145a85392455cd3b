"""Qwen3 and Gemma 3 configs: the older config.json layout reads as transformers reads it, and
options duel does not implement fail with the file, the key and what was expected."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import transformers

from duel.models import ModelConfig, read_config

# a Gemma 3 1B-style config.json in the older layout (rope_theta / rope_local_base_freq /
# rope_scaling, sliding_window_pattern instead of layer_types), shrunk
GEMMA_OLD = {
    "architectures": ["Gemma3ForCausalLM"],
    "model_type": "gemma3_text",
    "vocab_size": 97,
    "hidden_size": 32,
    "intermediate_size": 48,
    "num_hidden_layers": 8,
    "num_attention_heads": 4,
    "num_key_value_heads": 1,
    "head_dim": 16,
    "hidden_activation": "gelu_pytorch_tanh",
    "query_pre_attn_scalar": 16,
    "rope_theta": 1000000.0,
    "rope_local_base_freq": 10000.0,
    "rope_scaling": {"rope_type": "linear", "factor": 8.0},
    "sliding_window": 512,
    "sliding_window_pattern": 6,
    "final_logit_softcapping": None,
    "attn_logit_softcapping": None,
    "max_position_embeddings": 32768,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "bos_token_id": 2,
}


def test_gemma3_older_layout_reads_as_transformers_reads_it():
    ours = ModelConfig.from_hf(GEMMA_OLD)
    hf = transformers.Gemma3TextConfig(**{k: v for k, v in GEMMA_OLD.items() if k != "architectures"})
    theirs = ModelConfig.from_hf({**hf.to_dict(), "architectures": ["Gemma3ForCausalLM"]})
    assert ours == theirs
    assert ours.layer_types == ("sliding_attention",) * 5 + ("full_attention",) + ("sliding_attention",) * 2
    assert ours.local_layers == (True,) * 5 + (False,) + (True,) * 2
    assert ours.rope(local=False) == (1e6, {"rope_type": "linear", "factor": 8.0})
    assert ours.rope(local=True) == (1e4, None)
    assert ours.tie_word_embeddings and ours.qk_norm and ours.query_pre_attn_scalar == 16
    # and what duel writes is a config transformers accepts, describing the same model
    back = transformers.Gemma3TextConfig(**{k: v for k, v in ours.to_hf().items() if k != "architectures"})
    assert list(back.layer_types) == list(ours.layer_types)
    assert back.rope_parameters["sliding_attention"]["rope_theta"] == 1e4


def test_qwen3_config_reads_head_dim_and_norms():
    hf = transformers.Qwen3Config(vocab_size=97, hidden_size=32, intermediate_size=40,
                                  num_hidden_layers=2, num_attention_heads=4,
                                  num_key_value_heads=2, head_dim=16)
    c = ModelConfig.from_hf({**hf.to_dict(), "architectures": ["Qwen3ForCausalLM"]})
    assert (c.family, c.model_type, c.head_dim, c.qk_norm) == ("llama", "qwen3", 16, True)
    assert not c.attention_bias and c.sliding_window is None and c.layer_types is None


@pytest.mark.parametrize(
    "arch,change,words",
    [
        ("Gemma3ForCausalLM", {"attn_logit_softcapping": 50.0}, ["attn_logit_softcapping", "null"]),
        ("Gemma3ForCausalLM", {"use_bidirectional_attention": True}, ["use_bidirectional_attention"]),
        ("Gemma3ForCausalLM", {"layer_types": ["full_attention"] * 3}, ["layer_types", "8 layers"]),
        ("Gemma3ForCausalLM", {"layer_types": ["local"] * 8}, ["layer_types", "sliding_attention"]),
        ("Gemma3ForCausalLM", {"sliding_window": None}, ["sliding_window", "positive integer"]),
        (
            "Gemma3ForCausalLM",
            {"rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 1e6},
                                 "sliding_attention": {"rope_type": "linear", "factor": 2.0}}},
            ["rope_parameters.sliding_attention", "'linear'"],
        ),
        ("Gemma3ForCausalLM", {"rope_scaling": {"rope_type": "yarn", "factor": 2.0}}, ["'yarn'"]),
        ("Qwen3ForCausalLM", {"use_sliding_window": True}, ["use_sliding_window", "Qwen3"]),
    ],
)
def test_unsupported_options_fail_with_file_and_key(tmp_path, arch, change, words):
    d = {**GEMMA_OLD, **change, "architectures": [arch]}
    if arch.startswith("Qwen3"):
        d["model_type"] = "qwen3"
    (tmp_path / "config.json").write_text(json.dumps(d))
    with pytest.raises(ValueError) as e:
        read_config(tmp_path)
    msg = str(e.value)
    assert str(tmp_path / "config.json") in msg
    for w in words:
        assert w in msg

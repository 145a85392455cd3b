"""Hugging Face parameter names <-> ours: one table per family, one converter for all families.

A row is (HF name, our name, kind). `{i}` in a HF name is the layer index; our per-layer
parameters are stacked on a leading layer axis. Kinds:

  "copy"    same shape on both sides
  "flat"    HF keeps a flat vector, ours is reshaped (a bias [N * D] -> [N, D])
  "T1"/"T2" HF Linear weight [out, in]; ours is [in..., out...] with the first 1 or 2 dims of our
            (per-layer) shape forming `in` (o_proj/dense: [N * D] -> [N, D])
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from duel.models.config import ModelConfig
from duel.models.transformer import param_shapes

LLAMA = [
    ("model.embed_tokens.weight", "embed", "copy"),
    ("model.layers.{i}.input_layernorm.weight", "layers.attn_norm", "copy"),
    ("model.layers.{i}.self_attn.q_proj.weight", "layers.wq", "T1"),
    ("model.layers.{i}.self_attn.k_proj.weight", "layers.wk", "T1"),
    ("model.layers.{i}.self_attn.v_proj.weight", "layers.wv", "T1"),
    ("model.layers.{i}.self_attn.q_proj.bias", "layers.bq", "flat"),
    ("model.layers.{i}.self_attn.k_proj.bias", "layers.bk", "flat"),
    ("model.layers.{i}.self_attn.v_proj.bias", "layers.bv", "flat"),
    ("model.layers.{i}.self_attn.q_norm.weight", "layers.q_norm", "copy"),  # Qwen3
    ("model.layers.{i}.self_attn.k_norm.weight", "layers.k_norm", "copy"),
    ("model.layers.{i}.self_attn.o_proj.weight", "layers.wo", "T2"),
    ("model.layers.{i}.self_attn.o_proj.bias", "layers.bo", "copy"),
    ("model.layers.{i}.post_attention_layernorm.weight", "layers.mlp_norm", "copy"),
    ("model.layers.{i}.mlp.gate_proj.weight", "layers.w_gate", "T1"),
    ("model.layers.{i}.mlp.up_proj.weight", "layers.w_up", "T1"),
    ("model.layers.{i}.mlp.down_proj.weight", "layers.w_down", "T1"),
    ("model.norm.weight", "final_norm", "copy"),
    ("lm_head.weight", "lm_head", "T1"),
    ("score.weight", "score", "T1"),
]

GPT_NEOX = [
    ("gpt_neox.embed_in.weight", "embed", "copy"),
    ("gpt_neox.layers.{i}.input_layernorm.weight", "layers.ln1_scale", "copy"),
    ("gpt_neox.layers.{i}.input_layernorm.bias", "layers.ln1_bias", "copy"),
    ("gpt_neox.layers.{i}.post_attention_layernorm.weight", "layers.ln2_scale", "copy"),
    ("gpt_neox.layers.{i}.post_attention_layernorm.bias", "layers.ln2_bias", "copy"),
    # fused q|k|v, laid out per head: out index = (head, {q,k,v}, d)
    ("gpt_neox.layers.{i}.attention.query_key_value.weight", "layers.wqkv", "T1"),
    ("gpt_neox.layers.{i}.attention.query_key_value.bias", "layers.bqkv", "flat"),
    ("gpt_neox.layers.{i}.attention.dense.weight", "layers.wo", "T2"),
    ("gpt_neox.layers.{i}.attention.dense.bias", "layers.bo", "copy"),
    ("gpt_neox.layers.{i}.mlp.dense_h_to_4h.weight", "layers.w_in", "T1"),
    ("gpt_neox.layers.{i}.mlp.dense_h_to_4h.bias", "layers.b_in", "copy"),
    ("gpt_neox.layers.{i}.mlp.dense_4h_to_h.weight", "layers.w_out", "T1"),
    ("gpt_neox.layers.{i}.mlp.dense_4h_to_h.bias", "layers.b_out", "copy"),
    ("gpt_neox.final_layer_norm.weight", "final_norm", "copy"),
    ("gpt_neox.final_layer_norm.bias", "final_norm_bias", "copy"),
    ("embed_out.weight", "lm_head", "T1"),
    ("score.weight", "score", "T1"),
]

# Gemma 3 (text): Llama's names, but post_attention_layernorm normalises the attention output and
# pre_/post_feedforward_layernorm wrap the MLP; norm weights are stored zero-centred, as ours
GEMMA = [
    ("model.embed_tokens.weight", "embed", "copy"),
    ("model.layers.{i}.input_layernorm.weight", "layers.attn_norm", "copy"),
    ("model.layers.{i}.self_attn.q_proj.weight", "layers.wq", "T1"),
    ("model.layers.{i}.self_attn.k_proj.weight", "layers.wk", "T1"),
    ("model.layers.{i}.self_attn.v_proj.weight", "layers.wv", "T1"),
    ("model.layers.{i}.self_attn.q_proj.bias", "layers.bq", "flat"),
    ("model.layers.{i}.self_attn.k_proj.bias", "layers.bk", "flat"),
    ("model.layers.{i}.self_attn.v_proj.bias", "layers.bv", "flat"),
    ("model.layers.{i}.self_attn.q_norm.weight", "layers.q_norm", "copy"),
    ("model.layers.{i}.self_attn.k_norm.weight", "layers.k_norm", "copy"),
    ("model.layers.{i}.self_attn.o_proj.weight", "layers.wo", "T2"),
    ("model.layers.{i}.self_attn.o_proj.bias", "layers.bo", "copy"),
    ("model.layers.{i}.post_attention_layernorm.weight", "layers.post_attn_norm", "copy"),
    ("model.layers.{i}.pre_feedforward_layernorm.weight", "layers.mlp_norm", "copy"),
    ("model.layers.{i}.mlp.gate_proj.weight", "layers.w_gate", "T1"),
    ("model.layers.{i}.mlp.up_proj.weight", "layers.w_up", "T1"),
    ("model.layers.{i}.mlp.down_proj.weight", "layers.w_down", "T1"),
    ("model.layers.{i}.post_feedforward_layernorm.weight", "layers.post_mlp_norm", "copy"),
    ("model.norm.weight", "final_norm", "copy"),
    ("lm_head.weight", "lm_head", "T1"),
    ("score.weight", "score", "T1"),
]

TABLES = {"llama": LLAMA, "gpt_neox": GPT_NEOX, "gemma": GEMMA}
BASE_PREFIX = {"llama": "model.", "gpt_neox": "gpt_neox.", "gemma": "model."}
# buffers some checkpoints carry that are not parameters
IGNORED_SUFFIXES = ("rotary_emb.inv_freq", "attention.bias", "attention.masked_bias")


def hf_shape(kind: str, ours: tuple[int, ...]) -> tuple[int, ...]:
    """Shape of the HF tensor for one (per-layer) parameter of ours."""
    if kind == "copy":
        return ours
    if kind == "flat":
        return (math.prod(ours),)
    k = int(kind[1])
    return (math.prod(ours[k:]), math.prod(ours[:k]))


def to_ours(kind: str, x: np.ndarray, ours: tuple[int, ...]) -> np.ndarray:
    if kind == "copy":
        return x
    if kind == "flat":
        return x.reshape(ours)
    return x.T.reshape(ours)


def to_hf(kind: str, x: np.ndarray) -> np.ndarray:
    if kind in ("copy", "flat"):
        return x.reshape(hf_shape(kind, x.shape))
    k = int(kind[1])
    return np.ascontiguousarray(x.reshape(math.prod(x.shape[:k]), -1).T)


def rows(config: ModelConfig):
    """(HF name template, our name, kind, our full shape) for every parameter of this model."""
    shapes = param_shapes(config)
    return [
        (hf, ours, kind, shapes[ours]) for hf, ours, kind in TABLES[config.family] if ours in shapes
    ]


def from_hf(
    config: ModelConfig, get: Callable[[str, tuple[int, ...], str], np.ndarray]
) -> dict[str, np.ndarray]:
    """Our parameters (numpy) from HF tensors. get(hf_name, expected_hf_shape, our_name) returns the
    tensor, raising a clear error when it is missing or its shape differs."""
    out = {}
    for hf, ours, kind, shape in rows(config):
        if ours.startswith("layers."):
            per = shape[1:]
            out[ours] = np.stack(
                [
                    to_ours(kind, get(hf.format(i=i), hf_shape(kind, per), ours), per)
                    for i in range(config.num_layers)
                ]
            )
        else:
            out[ours] = to_ours(kind, get(hf, hf_shape(kind, shape), ours), shape)
    return out


def to_hf_tensors(config: ModelConfig, params: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """HF name -> tensor for every parameter of ours (numpy in, numpy out)."""
    out = {}
    for hf, ours, kind, _ in rows(config):
        x = np.asarray(params[ours])
        if ours.startswith("layers."):
            for i in range(config.num_layers):
                out[hf.format(i=i)] = np.ascontiguousarray(to_hf(kind, x[i]))
        else:
            out[hf] = np.ascontiguousarray(to_hf(kind, x))
    return out

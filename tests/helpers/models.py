"""Shared helpers for the model tests (no tests here): tiny random transformers models and batches.

Imported by the model tests as `from tests.helpers import models as H`.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
import transformers

PAD = 0
VOCAB = 97

VARIANTS = {
    # Qwen2: q/k/v biases, tied embeddings, GQA (4 query heads, 2 kv heads)
    "qwen2": lambda: transformers.Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=40,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=True,
        pad_token_id=PAD,
        rope_theta=10000.0,
        rms_norm_eps=1e-6,
    ),
    # Llama 3: untied embeddings, llama3 RoPE scaling that hits all three frequency bands
    "llama3": lambda: transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=40,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=False,
        pad_token_id=PAD,
        rms_norm_eps=1e-5,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 16,
            "rope_theta": 500000.0,
        },
    ),
    # Pythia: partial rotary (rotary_pct 0.25 of head_dim 16 = 4 dims), parallel residual, LayerNorm
    "pythia": lambda: transformers.GPTNeoXConfig(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        rotary_pct=0.25,
        use_parallel_residual=True,
        pad_token_id=PAD,
    ),
}


def hf_model(variant: str, num_labels: int = 0, seed: int = 0, **overrides):
    """A tiny transformers model with every parameter randomised (biases and norms included)."""
    cfg = VARIANTS[variant]()
    for k, v in overrides.items():
        setattr(cfg, k, v)
    torch.manual_seed(seed)
    if num_labels:
        cfg.num_labels = num_labels
        model = transformers.AutoModelForSequenceClassification.from_config(cfg)
    else:
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            base = 1.0 if ("norm" in name and name.endswith("weight")) else 0.0
            p.copy_(base + 0.15 * torch.randn_like(p))
    return model.eval().float()


def left_padded_batch(rng: np.random.Generator, lengths, total: int):
    """Random ids [B, total] (real tokens >= 1) left-padded with PAD, mask, and HF position ids."""
    ids = np.full((len(lengths), total), PAD, np.int64)
    mask = np.zeros((len(lengths), total), np.int64)
    for b, n in enumerate(lengths):
        if n:
            ids[b, total - n :] = rng.integers(1, VOCAB, n)
            mask[b, total - n :] = 1
    positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0)
    return ids, mask, positions


def hf_forward(model, ids, mask, positions):
    """transformers output (logits or scores) as float32 numpy, for a left-padded batch."""
    with torch.no_grad():
        out = model(
            input_ids=torch.from_numpy(ids),
            attention_mask=torch.from_numpy(mask),
            position_ids=torch.from_numpy(positions),
        )
    return out.logits.float().numpy()


VARIANTS.update(
    {
        # Mistral with a sliding window shorter than the test sequences
        "mistral_window": lambda: transformers.MistralConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            intermediate_size=40,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=1,
            sliding_window=4,
            pad_token_id=PAD,
        ),
        # GPT-NeoX with the sequential residual and full rotary
        "neox_serial": lambda: transformers.GPTNeoXConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=2,
            num_attention_heads=2,
            rotary_pct=1.0,
            use_parallel_residual=False,
            pad_token_id=PAD,
        ),
    }
)


def jit_forward(model):
    """model(ids, mask) compiled once (eager NNX calls dispatch op by op, slowly on a busy CPU)."""
    import jax
    from flax import nnx

    graphdef, state = nnx.split(model)
    fn = jax.jit(lambda s, i, m: nnx.merge(graphdef, s)(i, m))
    return lambda ids, mask: fn(state, ids, mask)


# Llama with attention_bias: biases on q/k/v and on o_proj
VARIANTS["llama_bias"] = lambda: transformers.LlamaConfig(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=40,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=2,
    attention_bias=True,
    pad_token_id=PAD,
)


VARIANTS.update(
    {
        # Qwen3: per-head q/k RMSNorm, head_dim 16 != hidden / heads = 8, no biases, tied embeddings
        "qwen3": lambda: transformers.Qwen3Config(
            vocab_size=VOCAB,
            hidden_size=32,
            intermediate_size=40,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            tie_word_embeddings=True,
            pad_token_id=PAD,
            rms_norm_eps=1e-6,
        ),
        # Gemma 3 text: local (window 4, shorter than the test sequences) / global / local layers,
        # each kind with its own RoPE (global: linear scaling), query_pre_attn_scalar != head_dim,
        # final logit soft-capping low enough to bend random logits, head_dim != hidden / heads
        "gemma3": lambda: transformers.Gemma3TextConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            intermediate_size=48,
            num_hidden_layers=3,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=16,
            layer_types=["sliding_attention", "full_attention", "sliding_attention"],
            sliding_window=4,
            query_pre_attn_scalar=24,
            final_logit_softcapping=3.0,
            rope_parameters={
                "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1000.0},
                "sliding_attention": {"rope_type": "default", "rope_theta": 50.0},
            },
            pad_token_id=PAD,
        ),
    }
)

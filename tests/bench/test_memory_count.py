"""bench/memory.py's analytic activation count: every family of duel.models, numbers by hand."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.memory import saved_per_token_layer  # noqa: E402
from duel.models import ModelConfig  # noqa: E402

DIMS = dict(vocab_size=64, hidden_size=8, num_layers=2, num_heads=2, num_kv_heads=1, head_dim=4, intermediate_size=16)


@pytest.mark.parametrize(
    ("config", "elems"),
    [
        # 4H + 2ND + 2KD + 4I = 32 + 16 + 8 + 64
        (ModelConfig(family="llama", **DIMS), 120),
        # + q, k before their norms: ND + KD = 12
        (ModelConfig(family="llama", architecture="Qwen3ForCausalLM", qk_norm=True, **DIMS), 132),
        # + q/k norms (12) + post-attention and post-MLP norm outputs (2H = 16)
        (ModelConfig(family="gemma", architecture="Gemma3ForCausalLM", qk_norm=True, sliding_window=4,
                     layer_types=("sliding_attention", "full_attention"), **DIMS), 148),
        # 3H + 2ND + 2KD + 2I = 24 + 16 + 8 + 32
        (ModelConfig(family="gpt_neox", architecture="GPTNeoXForCausalLM", **DIMS), 80),
    ],
    ids=["llama", "qwen3", "gemma", "gpt_neox"],
)
def test_saved_activations_per_token_and_layer(config, elems):
    seq, act = 10, 2
    probs = (4 + act) * config.num_heads * seq  # float32 and compute-dtype softmax probabilities
    assert saved_per_token_layer(config, seq, act, remat=False, layer_remat=False) == act * elems + probs
    assert saved_per_token_layer(config, seq, act, remat=False, layer_remat=True) == act * config.hidden_size


def test_unknown_family_is_named():
    other = types.SimpleNamespace(family="mamba", hidden_size=8, num_heads=2, num_kv_heads=1, head_dim=4,
                                  intermediate_size=16)
    with pytest.raises(ValueError, match="'mamba'"):
        saved_per_token_layer(other, 10, 2, remat=False, layer_remat=False)

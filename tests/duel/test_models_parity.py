"""Parity with transformers: tiny random HF models saved by transformers and loaded by duel give the
same logits / reward scores; saved again by duel, transformers loads them back to the same numbers."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax.numpy as jnp
import numpy as np
import pytest
import transformers

from duel.models import load_pretrained, read_config, save_pretrained

from tests.helpers import models as H  # noqa: E402

LENGTHS = [9, 3, 6, 1]
T = 9


@pytest.mark.parametrize(
    "variant",
    ["qwen2", "llama3", "pythia", "mistral_window", "neox_serial", "llama_bias", "qwen3", "gemma3"],
)
def test_causal_lm_logits_match_transformers(variant, tmp_path):
    hf = H.hf_model(variant)
    hf.save_pretrained(tmp_path)
    model, config = load_pretrained(tmp_path, dtype=jnp.float32)
    ids, mask, pos = H.left_padded_batch(np.random.default_rng(1), LENGTHS, T)
    want = H.hf_forward(hf, ids, mask, pos)
    got = np.asarray(H.jit_forward(model)(ids, mask))
    assert got.shape == want.shape == (len(LENGTHS), T, H.VOCAB)
    real = mask.astype(bool)
    assert np.abs(got - want)[real].max() <= 1e-4
    assert np.isfinite(got).all()  # padded rows (all keys masked) stay finite

    # round trip: duel save -> transformers load -> the same logits; the config survives too
    save_pretrained(model, config, tmp_path / "duel")
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "duel").eval()
    assert type(reloaded) is type(hf)
    again = H.hf_forward(reloaded, ids, mask, pos)
    assert np.abs(again - want)[real].max() <= 1e-6
    assert read_config(tmp_path / "duel") == config


@pytest.mark.parametrize("variant", ["qwen2", "llama3", "pythia", "qwen3", "gemma3"])
def test_reward_head_matches_transformers(variant, tmp_path):
    hf = H.hf_model(variant, num_labels=1)
    hf.save_pretrained(tmp_path)
    model, config = load_pretrained(tmp_path, dtype=jnp.float32)
    assert config.num_labels == 1 and config.architecture.endswith("ForSequenceClassification")
    ids, mask, pos = H.left_padded_batch(np.random.default_rng(2), LENGTHS, T)
    want = H.hf_forward(hf, ids, mask, pos)
    got = np.asarray(H.jit_forward(model)(ids, mask))
    assert got.shape == want.shape == (len(LENGTHS), 1)
    assert np.abs(got - want).max() <= 1e-4

    save_pretrained(model, config, tmp_path / "duel")
    reloaded = transformers.AutoModelForSequenceClassification.from_pretrained(
        tmp_path / "duel"
    ).eval()
    assert type(reloaded) is type(hf) and reloaded.config.num_labels == 1
    assert np.abs(H.hf_forward(reloaded, ids, mask, pos) - want).max() <= 1e-6
    assert read_config(tmp_path / "duel") == config

"""Policy and reward models (Flax NNX) with Hugging Face I/O.

    model, config = load_pretrained(path, dtype=jnp.float32)
    save_pretrained(model, config, out_dir)
    model = build_model(config, seed=0, dtype=jnp.float32)
    tokenizer = duel.tasks.load_tokenizer(path)   # the one tokenizer loader (tokenizer.json, no torch)

See docs/architecture.md ("Models") for the forward, KV-cache and reward-model contracts.
"""

from duel.models.config import ARCHITECTURES, ModelConfig
from duel.models.hf import load_pretrained, read_config, save_pretrained
from duel.models.transformer import (
    Transformer,
    build_model,
    default_positions,
    init_params,
    param_shapes,
)

__all__ = [
    "ARCHITECTURES",
    "ModelConfig",
    "Transformer",
    "build_model",
    "default_positions",
    "init_params",
    "load_pretrained",
    "param_shapes",
    "read_config",
    "save_pretrained",
]

"""A tiny llama policy directory (model + tokenizer) for the loop tests; no network."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import jax.numpy as jnp

ROOT = str(Path(__file__).resolve().parents[2])  # the checkout: actors import duel/ from here
SYMBOLS = list("0123456789+=- ")


def tiny_model_dir(path, seed: int = 0, hidden: int = 16, layers: int = 1) -> str:
    from duel.models import ModelConfig, build_model, save_pretrained
    from duel.tasks.tokenizer import build_tokenizer, save_tokenizer

    path = Path(path)
    if (path / "config.json").is_file():
        return str(path)
    tok = build_tokenizer(SYMBOLS, level="char")
    cfg = ModelConfig(family="llama", vocab_size=tok.get_vocab_size(), hidden_size=hidden,
                      num_layers=layers, num_heads=2, num_kv_heads=1, head_dim=8,
                      intermediate_size=32, max_position_embeddings=128, bos_token_id=1,
                      eos_token_id=(2,), pad_token_id=0, architecture="LlamaForCausalLM")
    model = build_model(cfg, seed=seed, dtype=jnp.float32)
    save_pretrained(model, cfg, path)
    save_tokenizer(tok, path)
    return str(path)


from duel.tasks.arithmetic import Arithmetic  # noqa: E402  (after the helpers TinyTask builds on)


class TinyTask(Arithmetic):
    """arithmetic with a very small starting policy (a few SFT steps): fast compiles, CPU tests."""

    name = "tiny_arithmetic"
    max_new_tokens = 4
    model: ClassVar[dict] = {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32}
    sft: ClassVar[dict] = {"examples": 512, "steps": 30, "batch_size": 32, "learning_rate": 3e-3, "warmup_steps": 5}
    num_eval = 16


TINY_TASK = "tests.helpers.tiny:TinyTask"


def tiny_config(model_dir=None, **over):
    """A Config for the loop tests: TinyTask, 4 prompts x 4 candidates, tiny ERM. With
    `model_dir` (a `tiny_model_dir`) the policy is that untrained model: no SFT to wait for."""
    from duel.config import from_dict

    d = {"task": TINY_TASK, "policy": {"path": str(model_dir) if model_dir else None}, "steps": 3, "prompts_per_step": 4, "candidates": 4,
         "sampling": {"max_new_tokens": 4}, "erm": {"num_members": 4, "hidden": [8], "steps_per_update": 1},
         "optim": {"lr": 1e-3}, "oracle": {"kind": "task"}, "eval": {"every": 0, "num_prompts": 8},
         "checkpoint": {"every": 0, "keep": 2}, "logging": {"tensorboard": False, "progress": False},
         "resources": {"generators": 2, "oracle_actors": 1}}
    for k, v in over.items():
        node = d
        parts = k.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    return from_dict(d)


def start_ray(**env_vars) -> None:
    """A local Ray of its own for a test module: its actors import this checkout and share the
    tests' compile and starting-policy caches; `env_vars` adds to their environment."""
    import os

    import ray

    env = {"PYTHONPATH": ROOT, "JAX_COMPILATION_CACHE_DIR": os.environ["JAX_COMPILATION_CACHE_DIR"],
           "DUEL_CACHE": os.environ["DUEL_CACHE"], **env_vars}
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": env})

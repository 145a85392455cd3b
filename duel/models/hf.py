"""Hugging Face directories in and out, with no network and no pickles.

load_pretrained(path)  config.json + model.safetensors (or a sharded model.safetensors.index.json)
save_pretrained(...)   config.json + model.safetensors (or shards + index) that transformers loads
The tokenizer of the same directory: duel.tasks.load_tokenizer(path) (tokenizer.json, no torch).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from duel.models import weights
from duel.models.config import ModelConfig
from duel.models.transformer import Transformer

SINGLE = "model.safetensors"
INDEX = "model.safetensors.index.json"


class _Safetensors:
    """Name -> tensor over one file or a sharded index; tensors are read lazily."""

    def __init__(self, directory: Path):
        self.directory = directory
        index = directory / INDEX
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError) as e:
                raise ValueError(
                    f"{index}: not a safetensors index (expected a 'weight_map' object): {e}"
                ) from e
            self.files = {name: directory / f for name, f in weight_map.items()}
            for f in sorted(set(self.files.values())):
                if not f.is_file():
                    raise FileNotFoundError(
                        f"{index}: shard {f.name} is listed but missing from {directory}"
                    )
        elif (directory / SINGLE).is_file():
            f = directory / SINGLE
            with safe_open(f, framework="numpy") as h:
                self.files = dict.fromkeys(h.keys(), f)
        else:
            found = sorted(
                p.name for p in directory.glob("*") if p.suffix in (".bin", ".pt", ".pth", ".ckpt")
            )
            hint = (
                f" (found {found}: pickled weights are never read; convert them to safetensors)"
                if found
                else ""
            )
            raise FileNotFoundError(
                f"{directory}: no safetensors weights; looked for {SINGLE} and {INDEX}{hint}"
            )
        self._handles: dict[Path, object] = {}

    def _open(self, f: Path):
        if f not in self._handles:
            self._handles[f] = safe_open(f, framework="numpy")
        return self._handles[f]

    def get(self, name: str, expected: tuple[int, ...], ours: str, prefix: str) -> np.ndarray:
        key = name
        if key not in self.files and key.startswith(prefix) and key[len(prefix) :] in self.files:
            key = key[len(prefix) :]  # saved from the base model (no "model." / "gpt_neox." prefix)
        if key not in self.files:
            where = self.directory / (INDEX if (self.directory / INDEX).is_file() else SINGLE)
            raise ValueError(
                f"{where}: missing tensor {name!r} (needed for our {ours!r}, expected shape {expected})"
            )
        f = self.files[key]
        h = self._open(f)
        got = tuple(h.get_slice(key).get_shape())
        if got != tuple(expected):
            raise ValueError(
                f"{f}: tensor {key!r} has shape {got}, expected {tuple(expected)} (from config.json)"
            )
        self.used.add(key)
        return h.get_tensor(key)

    def __enter__(self):
        self.used: set[str] = set()
        return self

    def __exit__(self, *exc):
        for h in self._handles.values():
            h.__exit__(None, None, None)
        self._handles.clear()


def read_config(path) -> ModelConfig:
    path = Path(path)
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{path}: no config.json (expected a Hugging Face model directory)")
    try:
        d = json.loads(cfg_file.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{cfg_file}: not valid JSON: {e}") from e
    return ModelConfig.from_hf(d, source=str(cfg_file))


def load_pretrained(
    path, dtype=jnp.float32, remat: bool = False
) -> tuple[Transformer, ModelConfig]:
    """(model, config) from a Hugging Face directory; parameters cast to `dtype`."""
    path = Path(path)
    config = read_config(path)
    prefix = weights.BASE_PREFIX[config.family]
    np_dtype = np.dtype(jnp.dtype(dtype))
    with _Safetensors(path) as st:
        params = weights.from_hf(
            config, lambda n, s, o: st.get(n, s, o, prefix).astype(np_dtype, copy=False)
        )
        unused = sorted(
            n for n in st.files if n not in st.used and not n.endswith(weights.IGNORED_SUFFIXES)
        )
    if unused:
        warnings.warn(
            f"{path}: {len(unused)} tensors not used by {config.architecture}: {unused[:8]}",
            stacklevel=2,
        )
    return Transformer(
        config, {k: jnp.asarray(v, dtype) for k, v in params.items()}, remat=remat
    ), config


def save_pretrained(
    model: Transformer,
    config: ModelConfig,
    out_dir,
    max_shard_bytes: int | None = None,
    tokenizer=None,
) -> Path:
    """Write config.json + model.safetensors (or shards + index when max_shard_bytes is set)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    params = {k: np.asarray(v) for k, v in model.params().items()}
    dtype = next(iter(params.values())).dtype
    tensors = weights.to_hf_tensors(config, params)
    hf = config.to_hf(dtype="bfloat16" if dtype == jnp.bfloat16 else str(dtype))
    (out / "config.json").write_text(json.dumps(hf, indent=2) + "\n")
    meta = {"format": "pt"}
    if max_shard_bytes is None:
        save_file(tensors, out / SINGLE, metadata=meta)
    else:
        shards, size = [[]], 0
        for name, x in tensors.items():
            if shards[-1] and size + x.nbytes > max_shard_bytes:
                shards.append([])
                size = 0
            shards[-1].append(name)
            size += x.nbytes
        n = len(shards)
        weight_map = {}
        for i, names in enumerate(shards):
            fname = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
            save_file({k: tensors[k] for k in names}, out / fname, metadata=meta)
            weight_map.update({k: fname for k in names})
        total = sum(x.nbytes for x in tensors.values())
        (out / INDEX).write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2)
        )
    if tokenizer is not None:
        tokenizer.save_pretrained(str(out))
    return out


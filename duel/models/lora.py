"""LoRA adapters on a Transformer: a frozen base plus trainable low-rank updates per projection.

    spec = LoraSpec(rank=16, alpha=32.0, dropout=0.0, targets=("q", "k", "v", "o"))
    attach(model, spec, seed=0)       # in place: base weights -> Frozen, adapters -> nnx.Param
    merged = merge(model)             # a plain Transformer with W + (alpha / rank) A B
    base = base_model(model)          # the base alone, sharing the frozen arrays (no copy)
    save_peft(model, out_dir, base_path)   # a PEFT-format adapter directory

A target projection W (ours: [in..., out...]) becomes y = x W + (alpha / rank) drop(x) A B with
A [in..., r] and B [r, out...] per layer (stacked on the layer axis like W), PEFT's definition:
A starts uniform in +-1/sqrt(fan_in), B at zero, so a fresh adapter leaves the model unchanged.
The low-rank branch runs beside the frozen matmul (`project`); the base weight is never merged
in the train step, so its gradient is never formed and no merged copy is stored.

Every base parameter is held as `Frozen` (an nnx.Variable that is not an nnx.Param), so
`nnx.split(model, nnx.Param, ...)` (duel.train.split_model) puts only the adapters in the
trained params and their AdamW state; the base rides in the train state's `rest`. Dropout acts
only while a key is set (`set_dropout_key`, by the train step); sampling and scoring never drop.

Targets are projection names: q, k, v, o, gate, up, down (GPT-NeoX fuses q, k, v into one
projection, so it takes o, up, down only).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

TARGETS = ("q", "k", "v", "o", "gate", "up", "down")
# projection name -> (our parameter name, number of input axes of its per-layer shape)
_LLAMA = {"q": "wq", "k": "wk", "v": "wv", "o": "wo", "gate": "w_gate", "up": "w_up", "down": "w_down"}
_NEOX = {"o": "wo", "up": "w_in", "down": "w_out"}
_IN_AXES = {"wo": 2}  # [N, D, H]: attention output heads x head dim in; every other target: 1
A_SUFFIX, B_SUFFIX = "_lora_a", "_lora_b"


class Frozen(nnx.Variable):
    """A base weight under LoRA: held, sharded and read like a parameter, never trained."""


@dataclasses.dataclass(frozen=True)
class LoraSpec:
    """rank r, alpha (the update is scaled by alpha / r), dropout on the adapter's input, targets."""

    rank: int
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = TARGETS

    def __post_init__(self):
        if int(self.rank) < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {self.rank}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LoRA dropout must be in [0, 1), got {self.dropout}")
        bad = [t for t in self.targets if t not in TARGETS]
        if bad or not self.targets:
            raise ValueError(f"unknown LoRA target(s) {bad or '(none given)'}; valid targets: {', '.join(TARGETS)}")
        if len(set(self.targets)) != len(self.targets):
            raise ValueError(f"LoRA targets repeat a name: {list(self.targets)}")

    @property
    def scale(self) -> float:
        return float(self.alpha) / int(self.rank)


def from_config(policy) -> LoraSpec | None:
    """The LoraSpec of a run config's `policy` section (its `lora`: duel.config.LoraConfig); None
    when the rank is 0 (LoRA off)."""
    lc = policy.lora
    if not lc.rank:
        return None
    return LoraSpec(rank=lc.rank, alpha=lc.alpha, dropout=lc.dropout, targets=tuple(lc.targets))


def target_params(spec: LoraSpec, config) -> dict[str, str]:
    """{projection name: our parameter name} for the spec's targets on this model config."""
    from duel.models.transformer import param_shapes

    table = _NEOX if config.family == "gpt_neox" else _LLAMA
    shapes = param_shapes(config)
    out = {}
    for t in spec.targets:
        if t not in table or f"layers.{table[t]}" not in shapes:
            can = [k for k, v in table.items() if f"layers.{v}" in shapes]
            why = " (GPT-NeoX fuses q, k, v into one projection)" if config.family == "gpt_neox" else ""
            raise ValueError(f"LoRA target {t!r} does not exist in a {config.family} model{why}; "
                             f"targets it has: {', '.join(can)}")
        out[t] = table[t]
    return out


def adapter_shapes(spec: LoraSpec, config) -> dict[str, tuple[int, ...]]:
    """{"layers.wq_lora_a": [L, H, r], "layers.wq_lora_b": [L, r, N, D], ...} for the targets."""
    from duel.models.transformer import param_shapes

    shapes = param_shapes(config)
    out = {}
    for name in target_params(spec, config).values():
        s = shapes[f"layers.{name}"]
        k = 1 + _IN_AXES.get(name, 1)
        out[f"layers.{name}{A_SUFFIX}"] = (s[0], *s[1:k], spec.rank)
        out[f"layers.{name}{B_SUFFIX}"] = (s[0], spec.rank, *s[k:])
    return out


def init_adapters(spec: LoraSpec, config, seed: int = 0) -> dict[str, np.ndarray]:
    """float32 adapters: A uniform in +-1/sqrt(fan_in) (PEFT's kaiming_uniform(a=sqrt(5)) bound), B zero."""
    rng = np.random.default_rng([int(seed), 0x10BA])
    out = {}
    for name, shape in adapter_shapes(spec, config).items():
        if name.endswith(A_SUFFIX):
            bound = 1.0 / math.sqrt(math.prod(shape[1:-1]))
            out[name] = rng.uniform(-bound, bound, shape).astype(np.float32)
        else:
            out[name] = np.zeros(shape, np.float32)
    return out


def _owner(model, name):
    return (model.layers, name[7:]) if name.startswith("layers.") else (model, name)


def attach(model, spec: LoraSpec, seed: int = 0, adapters: dict | None = None):
    """Turn `model` (a duel.models.Transformer) into base + LoRA, in place; returns it.

    Every base parameter becomes `Frozen` (same array, no copy); the adapters (`adapters`, or
    `init_adapters(spec, config, seed)`) become the model's only nnx.Params."""
    if getattr(model, "lora_spec", None) is not None:
        raise ValueError("attach: the model already has LoRA adapters")
    from duel.models.transformer import param_shapes

    shapes = adapter_shapes(spec, model.config)
    adapters = init_adapters(spec, model.config, seed) if adapters is None else adapters
    if set(adapters) != set(shapes):
        raise ValueError(f"attach: adapters {sorted(adapters)} do not match the spec's {sorted(shapes)}")
    for name in param_shapes(model.config):
        owner, attr = _owner(model, name)
        setattr(owner, attr, Frozen(getattr(owner, attr)[...]))
    for name, value in adapters.items():
        if tuple(value.shape) != shapes[name]:
            raise ValueError(f"attach: {name} has shape {tuple(value.shape)}, expected {shapes[name]}")
        owner, attr = _owner(model, name)
        setattr(owner, attr, nnx.Param(jnp.asarray(value)))
    model.lora_spec = spec
    return model


def adapters(model) -> dict[str, jax.Array]:
    """{"layers.wq_lora_a": A, ...} of a model with LoRA ({} without)."""
    spec = getattr(model, "lora_spec", None)
    if spec is None:
        return {}
    return {n: getattr(*_owner(model, n))[...] for n in adapter_shapes(spec, model.config)}


def set_dropout_key(model, key) -> None:
    """Train with adapter dropout keyed by `key` (a no-op without LoRA or with dropout 0)."""
    spec = getattr(model, "lora_spec", None)
    if spec is not None and spec.dropout > 0 and key is not None:
        model.lora_dropout_key = nnx.Variable(key)


# ----------------------------------------------------------------------- the forward hooks


def layer_params(model, p: dict) -> dict:
    """The per-layer dict the layer scan slices, plus each target's A and scaled B (and, when
    training with dropout, one key and the rate per layer). Unchanged without LoRA."""
    spec = getattr(model, "lora_spec", None)
    if spec is None:
        return p
    out = dict(p)
    for name in target_params(spec, model.config).values():
        out[name + A_SUFFIX] = getattr(model.layers, name + A_SUFFIX)[...]
        out[name + B_SUFFIX] = getattr(model.layers, name + B_SUFFIX)[...] * spec.scale
    key = getattr(model, "lora_dropout_key", None)
    if key is not None:
        layers = model.config.num_layers
        out["lora_key"] = jax.random.split(key[...], layers)
        out["lora_rate"] = jnp.full((layers,), spec.dropout, jnp.float32)
    return out


def project(eq: str, x, p: dict, name: str):
    """einsum(eq, x, p[name]) plus the LoRA branch drop(x) A (alpha/r) B when `name` has one."""
    y = jnp.einsum(eq, x, p[name])
    a = p.get(name + A_SUFFIX)
    if a is None:
        return y
    b = p[name + B_SUFFIX]
    if "lora_key" in p:
        keep = 1.0 - p["lora_rate"]
        key = jax.random.fold_in(p["lora_key"], _DROP_TAGS[name])
        x = jnp.where(jax.random.bernoulli(key, keep, x.shape), x / keep.astype(x.dtype), 0).astype(x.dtype)
    h = jnp.tensordot(x, a.astype(x.dtype), axes=a.ndim - 1)
    return y + jnp.tensordot(h, b.astype(x.dtype), axes=1).astype(y.dtype)


_DROP_TAGS = {name: i for i, name in enumerate(sorted(set(_LLAMA.values()) | set(_NEOX.values())))}


# ----------------------------------------------------------------------- merge and export


def delta(a, b, scale: float):
    """scale * A B for stacked A [L, in..., r], B [L, r, out...] -> [L, in..., out...] (float32)."""
    a, b = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    la, lb = a.reshape(a.shape[0], -1, a.shape[-1]), b.reshape(b.shape[0], b.shape[1], -1)
    return (scale * jnp.einsum("lir,lro->lio", la, lb)).reshape(*a.shape[:-1], *b.shape[2:])


def merged_params(model) -> dict[str, jax.Array]:
    """The base parameters with every adapter folded in: W + (alpha / r) A B, in W's dtype
    (the sum in float32)."""
    spec = model.lora_spec
    params = dict(model.params())
    for name in target_params(spec, model.config).values():
        a = getattr(model.layers, name + A_SUFFIX)[...]
        b = getattr(model.layers, name + B_SUFFIX)[...]
        w = params[f"layers.{name}"]
        params[f"layers.{name}"] = (w.astype(jnp.float32) + delta(a, b, spec.scale)).astype(w.dtype)
    return params


def merge(model):
    """A plain Transformer (no adapters) with the merged weights: what `duel export` saves."""
    from duel.models.transformer import Transformer

    if getattr(model, "lora_spec", None) is None:
        return model
    return Transformer(model.config, merged_params(model), remat=model.remat)


def base_model(model):
    """The frozen base as a plain Transformer sharing the base arrays (the reference and
    encoder of a LoRA policy: no second copy of the weights)."""
    from duel.models.transformer import Transformer

    if getattr(model, "lora_spec", None) is None:
        raise ValueError("base_model: the model has no LoRA adapters")
    return Transformer(model.config, model.params(), remat=model.remat)


def hf_module_names(config) -> dict[str, str]:
    """{our weight name: the Hugging Face module it belongs to ("model.layers.{i}.self_attn.q_proj")},
    from the family's weight table (duel.models.weights)."""
    from duel.models.weights import rows

    return {ours: hf[: -len(".weight")] for hf, ours, kind, _ in rows(config)
            if kind in ("T1", "T2") and hf.endswith(".weight")}


def peft_state_dict(model) -> dict[str, np.ndarray]:
    """PEFT's tensor names and layouts for the adapters: per layer lora_A.weight [r, in] and
    lora_B.weight [out, r] of each target module (float32)."""
    spec = model.lora_spec
    modules = hf_module_names(model.config)
    out = {}
    for name in target_params(spec, model.config).values():
        a = np.asarray(getattr(model.layers, name + A_SUFFIX)[...], np.float32)
        b = np.asarray(getattr(model.layers, name + B_SUFFIX)[...], np.float32)
        for i in range(model.config.num_layers):
            module = "base_model.model." + modules[f"layers.{name}"].format(i=i)
            out[f"{module}.lora_A.weight"] = np.ascontiguousarray(a[i].reshape(-1, spec.rank).T)
            out[f"{module}.lora_B.weight"] = np.ascontiguousarray(b[i].reshape(spec.rank, -1).T)
    return out


def save_peft(model, out_dir, base_model_path: str | None = None) -> Path:
    """Write a PEFT LoRA adapter directory (adapter_config.json, adapter_model.safetensors) that
    `peft.PeftModel.from_pretrained(base, out_dir)` loads on top of the base model."""
    from safetensors.numpy import save_file

    spec = model.lora_spec
    if model.config.num_labels:
        raise ValueError("save_peft: a reward model's adapters are not exported in PEFT format")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    modules = hf_module_names(model.config)
    names = sorted({modules[f"layers.{n}"].rsplit(".", 1)[-1]
                    for n in target_params(spec, model.config).values()})
    config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": int(spec.rank),
        "lora_alpha": float(spec.alpha), "lora_dropout": float(spec.dropout),
        "target_modules": names, "bias": "none", "fan_in_fan_out": False,
        "use_rslora": False, "modules_to_save": None, "init_lora_weights": True,
        "inference_mode": True, "base_model_name_or_path": base_model_path,
    }
    (out_dir / "adapter_config.json").write_text(json.dumps(config, indent=2) + "\n")
    save_file(peft_state_dict(model), str(out_dir / "adapter_model.safetensors"), metadata={"format": "pt"})
    return out_dir

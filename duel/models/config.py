"""ModelConfig: the architecture of a policy or reward model, read from and written to HF config.json.

One frozen, hashable dataclass serves every family (it is a static attribute of the NNX module,
so jit caches key on it). `from_hf` accepts both the transformers 5 layout (`rope_parameters`;
Gemma 3: one per layer type, and `layer_types`) and the older one (`rope_theta` + `rope_scaling`,
`rotary_pct`; Gemma 3: `rope_local_base_freq`, `sliding_window_pattern`); `to_hf` writes the
transformers 5 layout, which `transformers.AutoConfig` reads back to the same model.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

# HF class name -> (family, model_type, is_reward_model)
ARCHITECTURES: dict[str, tuple[str, str, bool]] = {
    "LlamaForCausalLM": ("llama", "llama", False),
    "LlamaForSequenceClassification": ("llama", "llama", True),
    "Qwen2ForCausalLM": ("llama", "qwen2", False),
    "Qwen2ForSequenceClassification": ("llama", "qwen2", True),
    "MistralForCausalLM": ("llama", "mistral", False),
    "MistralForSequenceClassification": ("llama", "mistral", True),
    "GPTNeoXForCausalLM": ("gpt_neox", "gpt_neox", False),
    "GPTNeoXForSequenceClassification": ("gpt_neox", "gpt_neox", True),
    "Qwen3ForCausalLM": ("llama", "qwen3", False),
    "Qwen3ForSequenceClassification": ("llama", "qwen3", True),
    "Gemma3ForCausalLM": ("gemma", "gemma3_text", False),
    "Gemma3TextForSequenceClassification": ("gemma", "gemma3_text", True),
}
_CLASS_PREFIX = {
    "llama": "Llama",
    "qwen2": "Qwen2",
    "qwen3": "Qwen3",
    "mistral": "Mistral",
    "gpt_neox": "GPTNeoX",
    "gemma3_text": "Gemma3",
}
_DEFAULT_ARCH = {  # family -> (causal LM, reward model) when a ModelConfig names no architecture
    "llama": ("LlamaForCausalLM", "LlamaForSequenceClassification"),
    "gpt_neox": ("GPTNeoXForCausalLM", "GPTNeoXForSequenceClassification"),
    "gemma": ("Gemma3ForCausalLM", "Gemma3TextForSequenceClassification"),
}
LAYER_TYPES = ("full_attention", "sliding_attention")
SUPPORTED_ROPE_TYPES = ("default", "linear", "llama3")
SUPPORTED_ACTIVATIONS = ("silu", "gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu")


def _supported() -> str:
    return ", ".join(sorted(ARCHITECTURES))


def _gemma_fields(d: dict[str, Any], source: str, num_layers: int) -> tuple[dict, dict[str, Any]]:
    """Gemma 3 text config: (the global layers' rope parameters, ModelConfig fields). Reads the
    transformers 5 layout (rope_parameters per layer type, layer_types) and the older one
    (rope_theta + rope_scaling, rope_local_base_freq, sliding_window_pattern)."""
    if d.get("use_bidirectional_attention"):
        raise ValueError(f"{source}: use_bidirectional_attention=true (Gemma 3) is not supported")
    if d.get("attn_logit_softcapping") is not None:
        # transformers' Gemma3Attention never applies it (Gemma 3 checkpoints set it to null), so a
        # value here has no agreed meaning
        raise ValueError(
            f"{source}: attn_logit_softcapping={d['attn_logit_softcapping']!r} is not supported "
            "(Gemma 3 expects null: transformers' Gemma 3 attention does not soft-cap)"
        )
    params = d.get("rope_parameters")
    if isinstance(params, dict) and ("full_attention" in params or "sliding_attention" in params):
        rope = dict(params.get("full_attention") or {})
        local = dict(params.get("sliding_attention") or {})
        local_theta = local.pop("rope_theta", d.get("rope_local_base_freq", 10000.0))
        local_type = local.pop("rope_type", local.pop("type", "default"))
        if local_type != "default" or local:
            raise ValueError(
                f"{source}: rope_parameters.sliding_attention must be plain RoPE (rope_type "
                f"'default', rope_theta); got rope_type {local_type!r} with {local}"
            )
    else:
        rope = dict(params or d.get("rope_scaling") or {})
        local_theta = d.get("rope_local_base_freq", 10000.0)
    layer_types = d.get("layer_types")
    if layer_types is None:
        pattern = int(d.get("sliding_window_pattern", 6))
        layer_types = [
            "sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(num_layers)
        ]
    if len(layer_types) != num_layers or not set(layer_types) <= set(LAYER_TYPES):
        raise ValueError(
            f"{source}: layer_types must name {num_layers} layers (num_hidden_layers), each one of "
            f"{LAYER_TYPES}; got {layer_types}"
        )
    window = d.get("sliding_window", 4096)
    if window is None and "sliding_attention" in layer_types or window is not None and int(window) < 1:
        raise ValueError(
            f"{source}: sliding_window must be a positive integer (layer_types has sliding_attention "
            f"layers), got {window!r}"
        )
    cap = d.get("final_logit_softcapping")
    return rope, {
        "sliding_window": None if window is None else int(window),
        "query_pre_attn_scalar": float(d.get("query_pre_attn_scalar", 256)),
        "final_logit_softcap": None if cap is None else float(cap),
        "layer_types": tuple(layer_types),
        "local_rope_theta": float(local_theta),
    }


def _int_if_whole(x: float) -> int | float:
    """transformers' strict config wants an int where the value is whole (query_pre_attn_scalar)."""
    return int(x) if float(x).is_integer() else x


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    family: str  # "llama" | "gpt_neox" | "gemma"
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    rope_theta: float = 10000.0
    rope_scaling: dict | None = None  # HF rope parameters without rope_theta; None = plain RoPE
    rotary_dim: int = 0  # leading dims of each head that rotate (0 = head_dim)
    norm_eps: float = 1e-6
    tie_word_embeddings: bool = False
    attention_bias: bool = False  # q/k/v biases (Qwen2, GPT-NeoX); Llama also biases o_proj
    parallel_residual: bool = False  # GPT-NeoX: x + attn(ln1 x) + mlp(ln2 x)
    max_position_embeddings: int = 2048
    bos_token_id: int | None = None
    eos_token_id: tuple[int, ...] = ()
    pad_token_id: int | None = None
    num_labels: int = 0  # 0 = causal LM; > 0 = reward model (*ForSequenceClassification)
    architecture: str = ""  # HF class name, e.g. "Qwen2ForCausalLM"
    hidden_act: str = "silu"
    sliding_window: int | None = None  # a token sees at most this many tokens (on local layers)
    qk_norm: bool = False  # Qwen3, Gemma 3: RMSNorm over head_dim on every query and key head
    query_pre_attn_scalar: float | None = None  # Gemma 3: scores scaled by this ** -0.5 (None: head_dim)
    final_logit_softcap: float | None = None  # Gemma 3: LM logits = cap * tanh(logits / cap)
    # per layer "full_attention" | "sliding_attention" (Gemma 3); None: with sliding_window, every
    # layer is local (Mistral)
    layer_types: tuple[str, ...] | None = None
    local_rope_theta: float | None = None  # Gemma 3: plain RoPE base of local layers (None: global's)

    def __post_init__(self):
        if self.architecture == "":
            if self.family not in _DEFAULT_ARCH:
                raise ValueError(
                    f"ModelConfig: unknown family {self.family!r}; supported: {sorted(_DEFAULT_ARCH)}"
                )
            arch = _DEFAULT_ARCH[self.family][1 if self.num_labels else 0]
            object.__setattr__(self, "architecture", arch)
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"ModelConfig: architecture {self.architecture!r} is not supported; supported: {_supported()}"
            )
        if ARCHITECTURES[self.architecture][0] != self.family:
            raise ValueError(
                f"ModelConfig: architecture {self.architecture!r} belongs to family "
                f"{ARCHITECTURES[self.architecture][0]!r}, not {self.family!r}"
            )
        if self.rotary_dim == 0:
            object.__setattr__(self, "rotary_dim", self.head_dim)
        if isinstance(self.eos_token_id, int):
            object.__setattr__(self, "eos_token_id", (self.eos_token_id,))
        object.__setattr__(self, "eos_token_id", tuple(int(e) for e in self.eos_token_id))
        if self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"ModelConfig: num_heads {self.num_heads} is not a multiple of num_kv_heads {self.num_kv_heads}"
            )
        if self.rotary_dim % 2 or self.rotary_dim > self.head_dim:
            raise ValueError(
                f"ModelConfig: rotary_dim {self.rotary_dim} must be even and <= head_dim {self.head_dim}"
            )
        if self.hidden_act not in SUPPORTED_ACTIVATIONS:
            raise ValueError(
                f"ModelConfig: hidden_act {self.hidden_act!r} not supported; supported: {SUPPORTED_ACTIVATIONS}"
            )
        rope_type = (self.rope_scaling or {}).get("rope_type", "default")
        if rope_type not in SUPPORTED_ROPE_TYPES:
            raise ValueError(
                f"ModelConfig: rope type {rope_type!r} not supported; supported: {SUPPORTED_ROPE_TYPES}"
            )
        if self.layer_types is not None:
            object.__setattr__(self, "layer_types", tuple(self.layer_types))
            bad = sorted(set(self.layer_types) - set(LAYER_TYPES))
            if len(self.layer_types) != self.num_layers or bad:
                raise ValueError(
                    f"ModelConfig: layer_types must name {self.num_layers} layers, each one of "
                    f"{LAYER_TYPES}; got {list(self.layer_types)}"
                )

    def __hash__(self):  # rope_scaling is a dict: hash a canonical JSON form (computed once)
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash(json.dumps(dataclasses.asdict(self), sort_keys=True, default=str))
            object.__setattr__(self, "_hash", h)
        return h

    @property
    def model_type(self) -> str:
        return ARCHITECTURES[self.architecture][1]

    @property
    def is_reward_model(self) -> bool:
        return self.num_labels > 0

    @property
    def out_bias(self) -> bool:
        """Bias on the attention output projection (all but Qwen2: with attention_bias)."""
        return self.attention_bias and self.model_type in ("gpt_neox", "llama", "qwen3", "gemma3_text")

    @property
    def local_layers(self) -> tuple[bool, ...]:
        """Per layer: does it attend within the sliding window only?"""
        if self.sliding_window is None:
            return (False,) * self.num_layers
        if self.layer_types is None:
            return (True,) * self.num_layers
        return tuple(t == "sliding_attention" for t in self.layer_types)

    def rope(self, local: bool) -> tuple[float, dict | None]:
        """(theta, scaling) of a local or global layer's RoPE."""
        if local and self.local_rope_theta is not None:
            return self.local_rope_theta, None
        return self.rope_theta, self.rope_scaling

    # ---------------------------------------------------------------- HF config.json <-> ours

    @classmethod
    def from_hf(cls, d: dict[str, Any], source: str = "config.json") -> ModelConfig:
        """Read a HF config dict (transformers 4 or 5 layout). `source` names the file in errors."""
        archs = d.get("architectures") or []
        model_type = d.get("model_type")
        arch = next((a for a in archs if a in ARCHITECTURES), None)
        if arch is None:
            if archs or model_type not in _CLASS_PREFIX:
                raise ValueError(
                    f"{source}: unsupported model (architectures={archs}, model_type={model_type!r}); "
                    f"supported architectures: {_supported()}"
                )
            arch = _CLASS_PREFIX[model_type] + "ForCausalLM"
        family, model_type, is_rm = ARCHITECTURES[arch]

        def need(key: str, *alts: str):
            for k in (key, *alts):
                if d.get(k) is not None:
                    return d[k]
            raise ValueError(f"{source}: missing key {key!r} (needed for {arch})")

        hidden, heads = int(need("hidden_size")), int(need("num_attention_heads"))
        gemma = family == "gemma"
        head_dim = int(d.get("head_dim") or (256 if gemma else hidden // heads))
        gemma_fields: dict[str, Any] = {}
        if gemma:
            rope, gemma_fields = _gemma_fields(d, source, int(need("num_hidden_layers")))
        else:
            rope = dict(d.get("rope_parameters") or d.get("rope_scaling") or {})
        theta = float(
            rope.pop(
                "rope_theta",
                d.get("rope_theta", d.get("rotary_emb_base", 1e6 if gemma else 10000.0)),
            )
        )
        default_pct = 0.25 if family == "gpt_neox" else 1.0
        pct = float(
            rope.pop(
                "partial_rotary_factor",
                d.get("partial_rotary_factor", d.get("rotary_pct", default_pct)),
            )
        )
        rope_type = rope.pop("rope_type", rope.pop("type", "default"))
        rope_scaling = None if rope_type == "default" else {"rope_type": rope_type, **rope}
        if rope_type not in SUPPORTED_ROPE_TYPES:
            raise ValueError(
                f"{source}: rope type {rope_type!r} not supported; supported: {SUPPORTED_ROPE_TYPES}"
            )
        if d.get("mlp_bias"):
            raise ValueError(f"{source}: mlp_bias=true is not supported")
        if model_type in ("qwen2", "qwen3") and d.get("use_sliding_window"):
            raise ValueError(
                f"{source}: use_sliding_window=true ({_CLASS_PREFIX[model_type]}) is not supported"
            )
        num_labels = 0
        if is_rm:
            num_labels = len(d["id2label"]) if d.get("id2label") else int(d.get("num_labels", 2))
        eos = d.get("eos_token_id")
        eos = () if eos is None else (eos,) if isinstance(eos, int) else tuple(eos)
        if family == "gpt_neox":
            eps, act = d.get("layer_norm_eps", 1e-5), d.get("hidden_act", "gelu")
            parallel, bias = d.get("use_parallel_residual", True), d.get("attention_bias", True)
        elif gemma:
            eps, parallel = d.get("rms_norm_eps", 1e-6), False
            act = d.get("hidden_activation") or d.get("hidden_act") or "gelu_pytorch_tanh"
            bias = d.get("attention_bias", False)
        else:
            eps, act, parallel = d.get("rms_norm_eps", 1e-6), d.get("hidden_act", "silu"), False
            # Qwen2 always has q/k/v biases; Llama and Qwen3 only with attention_bias; Mistral never
            bias = {"qwen2": True, "llama": d.get("attention_bias", False),
                    "qwen3": d.get("attention_bias", False)}.get(model_type, False)
        return cls(
            family=family,
            vocab_size=int(need("vocab_size")),
            hidden_size=hidden,
            num_layers=int(need("num_hidden_layers")),
            num_heads=heads,
            num_kv_heads=int(d.get("num_key_value_heads") or heads),
            head_dim=head_dim,
            intermediate_size=int(need("intermediate_size")),
            rope_theta=theta,
            rope_scaling=rope_scaling,
            rotary_dim=int(head_dim * pct),
            norm_eps=float(eps),
            tie_word_embeddings=bool(d.get("tie_word_embeddings", gemma)),
            attention_bias=bool(bias),
            parallel_residual=bool(parallel),
            max_position_embeddings=int(d.get("max_position_embeddings", 2048)),
            bos_token_id=d.get("bos_token_id"),
            eos_token_id=eos,
            pad_token_id=d.get("pad_token_id"),
            num_labels=num_labels,
            architecture=arch,
            hidden_act=act,
            qk_norm=model_type in ("qwen3", "gemma3_text"),
            **{"sliding_window": d.get("sliding_window") if model_type == "mistral" else None,
               **gemma_fields},
        )

    def to_hf(self, dtype: str | None = None) -> dict[str, Any]:
        """HF config.json dict (transformers 5 layout) describing this model."""
        rope = {"rope_theta": self.rope_theta, "rope_type": "default", **(self.rope_scaling or {})}
        d: dict[str, Any] = {
            "architectures": [self.architecture],
            "model_type": self.model_type,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "hidden_act": self.hidden_act,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": (
                self.eos_token_id[0]
                if len(self.eos_token_id) == 1
                else list(self.eos_token_id) or None
            ),
            "pad_token_id": self.pad_token_id,
            "rope_parameters": rope,
        }
        if self.family == "gpt_neox":
            rope["partial_rotary_factor"] = self.rotary_dim / self.head_dim
            d.update(
                layer_norm_eps=self.norm_eps,
                use_parallel_residual=self.parallel_residual,
                attention_bias=self.attention_bias,
            )
        else:
            d.update(
                num_key_value_heads=self.num_kv_heads,
                head_dim=self.head_dim,
                rms_norm_eps=self.norm_eps,
            )
            if self.model_type in ("llama", "qwen3", "gemma3_text"):
                d["attention_bias"] = self.attention_bias
            if self.model_type in ("qwen2", "qwen3"):
                d["use_sliding_window"] = False
            if self.model_type == "mistral":
                d["sliding_window"] = self.sliding_window
            if self.family == "gemma":
                local = {"rope_type": "default", "rope_theta": self.rope(local=True)[0]}
                d["hidden_activation"] = d.pop("hidden_act")
                d.update(
                    rope_parameters={"full_attention": rope, "sliding_attention": local},
                    sliding_window=self.sliding_window,
                    layer_types=[LAYER_TYPES[local] for local in self.local_layers],
                    query_pre_attn_scalar=_int_if_whole(self.query_pre_attn_scalar or self.head_dim),
                    final_logit_softcapping=self.final_logit_softcap,
                    attn_logit_softcapping=None,
                    use_bidirectional_attention=False,
                )
        if self.num_labels:
            d["id2label"] = {str(i): f"LABEL_{i}" for i in range(self.num_labels)}
            d["label2id"] = {f"LABEL_{i}": i for i in range(self.num_labels)}
        if dtype is not None:
            d["dtype"] = dtype
        return d

    def replace(self, **changes) -> ModelConfig:
        return dataclasses.replace(self, **changes)

"""The decoder-only transformer (every family) as one Flax NNX module.

Per-layer parameters are stacked on a leading layer axis (`layers.wq` is [L, H, N, D]) and the
layers run under `jax.lax.scan`, so compile time does not grow with depth; the KV cache
(`kv_cache`: full length for global layers, a ring of the window for sliding-window ones) rides
along in the scan carry and only the new slots are written. Set
`model.remat = True` to rematerialise each layer in the backward pass (jax.checkpoint).

Parameter names (ours; `weights.py` maps them to and from Hugging Face names):

  llama     embed [V, H], layers.{attn_norm, mlp_norm} [L, H], layers.wq [L, H, N, D],
            layers.{wk, wv} [L, H, K, D], layers.{bq [L, N, D], bk, bv [L, K, D]} (attention_bias),
            layers.wo [L, N, D, H], layers.bo [L, H] (Llama attention_bias),
            layers.{w_gate, w_up} [L, H, I], layers.w_down [L, I, H], final_norm [H],
            layers.{q_norm, k_norm} [L, D] (qk_norm: Qwen3)
  gemma     as llama with qk_norm, plus layers.{post_attn_norm, post_mlp_norm} [L, H] (norms on
            the attention and MLP outputs); every norm weight is zero-centred (scale = 1 + w)
  gpt_neox  embed, layers.{ln1_scale, ln1_bias, ln2_scale, ln2_bias} [L, H],
            layers.wqkv [L, H, N, 3, D] (GPT-NeoX's per-head q|k|v layout), layers.bqkv [L, N, 3, D],
            layers.wo, layers.bo, layers.w_in [L, H, I], layers.b_in [L, I], layers.w_out [L, I, H],
            layers.b_out [L, H], final_norm, final_norm_bias [H]
  head      lm_head [H, V] (untied causal LM) or score [H, num_labels] (reward model)
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from flax import nnx

from duel.models import kv_cache
from duel.models import layers as F
from duel.models import lora
from duel.models.config import ModelConfig


def param_shapes(c: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter of the model for config c, by name, with its shape."""
    L, H, N, K, D, I, V = (
        c.num_layers,
        c.hidden_size,
        c.num_heads,
        c.num_kv_heads,
        c.head_dim,
        c.intermediate_size,
        c.vocab_size,
    )
    s: dict[str, tuple[int, ...]] = {"embed": (V, H)}
    if c.family in ("llama", "gemma"):
        s.update(
            {
                "layers.attn_norm": (L, H),
                "layers.wq": (L, H, N, D),
                "layers.wk": (L, H, K, D),
                "layers.wv": (L, H, K, D),
            }
        )
        if c.attention_bias:
            s.update({"layers.bq": (L, N, D), "layers.bk": (L, K, D), "layers.bv": (L, K, D)})
        if c.qk_norm:
            s.update({"layers.q_norm": (L, D), "layers.k_norm": (L, D)})
        s["layers.wo"] = (L, N, D, H)
        if c.out_bias:
            s["layers.bo"] = (L, H)
        if c.family == "gemma":
            s["layers.post_attn_norm"] = (L, H)
        s.update(
            {
                "layers.mlp_norm": (L, H),
                "layers.w_gate": (L, H, I),
                "layers.w_up": (L, H, I),
                "layers.w_down": (L, I, H),
                "final_norm": (H,),
            }
        )
        if c.family == "gemma":
            s["layers.post_mlp_norm"] = (L, H)
    elif c.family == "gpt_neox":
        s.update(
            {
                "layers.ln1_scale": (L, H),
                "layers.ln1_bias": (L, H),
                "layers.ln2_scale": (L, H),
                "layers.ln2_bias": (L, H),
                "layers.wqkv": (L, H, N, 3, D),
            }
        )
        if c.attention_bias:
            s["layers.bqkv"] = (L, N, 3, D)
        s["layers.wo"] = (L, N, D, H)
        if c.out_bias:
            s["layers.bo"] = (L, H)
        s.update(
            {
                "layers.w_in": (L, H, I),
                "layers.b_in": (L, I),
                "layers.w_out": (L, I, H),
                "layers.b_out": (L, H),
                "final_norm": (H,),
                "final_norm_bias": (H,),
            }
        )
    else:
        raise ValueError(f"unknown model family {c.family!r} (llama, gpt_neox, gemma)")
    if c.num_labels:
        s["score"] = (H, c.num_labels)
    elif not c.tie_word_embeddings:
        s["lm_head"] = (H, V)
    return s


def default_positions(attention_mask):
    """Left padding: positions count real tokens from 0 (cumsum(mask) - 1, clipped at 0)."""
    return jnp.maximum(jnp.cumsum(attention_mask.astype(jnp.int32), axis=-1) - 1, 0)


# ------------------------------------------------------------------------------- blocks


def _attend(p, q, k, v, rope, mask, kv, scale=None):
    """RoPE, attention, output projection. kv: None (attend with `mask`), or a function
    (q, k, v, scale) -> (attention output, cache) that writes the cache and attends over it."""
    cos, sin = rope
    q, k = F.apply_rope(q, cos, sin), F.apply_rope(k, cos, sin)
    if kv is None:
        a = F.attention(q, k, v, mask, scale)
    else:
        a, kv = kv(q, k, v, scale)
    out = lora.project("btnd,ndh->bth", a, p, "wo")
    if "bo" in p:
        out = out + p["bo"]
    return out, kv


def _qkv(c: ModelConfig, p, h):
    """Query, key and value projections (llama and gemma), with their biases if any."""
    q = lora.project("bth,hnd->btnd", h, p, "wq")
    k = lora.project("bth,hnd->btnd", h, p, "wk")
    v = lora.project("bth,hnd->btnd", h, p, "wv")
    if c.attention_bias:
        q, k, v = q + p["bq"], k + p["bk"], v + p["bv"]
    return q, k, v


def _gated_mlp(c: ModelConfig, p, h):
    """act(h W_gate) * (h W_up) W_down (llama and gemma)."""
    gate = F.ACTIVATIONS[c.hidden_act](lora.project("bth,hi->bti", h, p, "w_gate"))
    return lora.project("bti,ih->bth", gate * lora.project("bth,hi->bti", h, p, "w_up"), p, "w_down")


def llama_block(c: ModelConfig, p, x, rope, mask, kv):
    q, k, v = _qkv(c, p, F.rms_norm(x, p["attn_norm"], c.norm_eps))
    if c.qk_norm:
        q, k = F.rms_norm(q, p["q_norm"], c.norm_eps), F.rms_norm(k, p["k_norm"], c.norm_eps)
    a, kv = _attend(p, q, k, v, rope, mask, kv)
    x = x + a
    return x + _gated_mlp(c, p, F.rms_norm(x, p["mlp_norm"], c.norm_eps)), kv


def gpt_neox_block(c: ModelConfig, p, x, rope, mask, kv):
    h = F.layer_norm(x, p["ln1_scale"], p["ln1_bias"], c.norm_eps)
    qkv = jnp.einsum("bth,hnkd->btnkd", h, p["wqkv"])
    if c.attention_bias:
        qkv = qkv + p["bqkv"]
    a, kv = _attend(p, qkv[..., 0, :], qkv[..., 1, :], qkv[..., 2, :], rope, mask, kv)

    def mlp(y):
        y = F.layer_norm(y, p["ln2_scale"], p["ln2_bias"], c.norm_eps)
        y = F.ACTIVATIONS[c.hidden_act](lora.project("bth,hi->bti", y, p, "w_in") + p["b_in"])
        return lora.project("bti,ih->bth", y, p, "w_out") + p["b_out"]

    if c.parallel_residual:
        return x + a + mlp(x), kv
    x = x + a
    return x + mlp(x), kv


def gemma_block(c: ModelConfig, p, x, rope, mask, kv):
    """Gemma 3: sandwich norms (before and after attention and MLP), q/k norms, scores scaled by
    query_pre_attn_scalar ** -0.5, gated GELU-tanh MLP."""

    def norm(y, name):
        return F.gemma_rms_norm(y, p[name], c.norm_eps)

    q, k, v = _qkv(c, p, norm(x, "attn_norm"))
    q, k = norm(q, "q_norm"), norm(k, "k_norm")
    scale = None if c.query_pre_attn_scalar is None else c.query_pre_attn_scalar**-0.5
    a, kv = _attend(p, q, k, v, rope, mask, kv, scale)
    x = x + norm(a, "post_attn_norm")
    return x + norm(_gated_mlp(c, p, norm(x, "mlp_norm")), "post_mlp_norm"), kv


BLOCKS = {"llama": llama_block, "gpt_neox": gpt_neox_block, "gemma": gemma_block}


def _per_kind(is_local, local, glob):
    """The local or the global variant (mask, RoPE tables) of the layer being run; either may be
    None when no layer is of that kind."""
    if local is None or glob is None or local is glob:
        return glob if local is None else local
    if isinstance(is_local, bool):  # unrolled layers: the kind is known
        return local if is_local else glob
    return jax.tree.map(lambda a, b: jnp.where(is_local, a, b), local, glob)


# ------------------------------------------------------------------------------- module


class _Layers(nnx.Module):
    """Holds the stacked per-layer parameters (attributes named as in param_shapes, no prefix)."""


class Transformer(nnx.Module):
    """Causal LM (logits [B, T, V]) or reward model (scores [B, num_labels]) of either family."""

    def __init__(self, config: ModelConfig, params: dict, remat: bool = False):
        expected = param_shapes(config)
        if set(params) != set(expected):
            missing, extra = (
                sorted(set(expected) - set(params)),
                sorted(set(params) - set(expected)),
            )
            raise ValueError(f"Transformer params: missing {missing}, unexpected {extra}")
        self.config = config
        self.remat = remat
        self.layers = _Layers()
        for name, value in params.items():
            if tuple(value.shape) != expected[name]:
                raise ValueError(
                    f"Transformer params: {name} has shape {tuple(value.shape)}, expected {expected[name]}"
                )
            owner, attr = (self.layers, name[7:]) if name.startswith("layers.") else (self, name)
            setattr(owner, attr, nnx.Param(jnp.asarray(value)))

    # ---- parameters

    def params(self) -> dict[str, jax.Array]:
        """Flat {name: array} view of every parameter (names as in param_shapes)."""
        out = {}
        for name in param_shapes(self.config):
            owner, attr = (self.layers, name[7:]) if name.startswith("layers.") else (self, name)
            out[name] = getattr(owner, attr)[...]
        return out

    @property
    def dtype(self):
        return self.embed[...].dtype

    def _layer_params(self):
        p = {n[7:]: a for n, a in self.params().items() if n.startswith("layers.")}
        return lora.layer_params(self, p)  # + LoRA adapters, when attached (duel.models.lora)

    # ---- forward

    def _masks(self, q_slots, k_slots, key_mask):
        """(global, local) attention masks [B, T, S]; None for a kind no layer has."""
        kinds = self.config.local_layers
        glob = None if all(kinds) else F.attention_mask(q_slots, k_slots, key_mask)
        local = None
        if any(kinds):
            local = F.attention_mask(q_slots, k_slots, key_mask, self.config.sliding_window)
        return glob, local

    def layer_slices(self) -> list[dict]:
        """Each layer's parameters as arrays of their own ([L, ...] -> L x [...]; a copy): the
        straight-line decode step reads these (`forward_cached(layers=...)`)."""
        p = self._layer_params()
        return [jax.tree.map(lambda a, i=i: a[i], p) for i in range(self.config.num_layers)]

    def _run_layers(self, x, positions, masks, cache=None, index=None, unroll=False, layers=None):
        """masks: (global, local) from _masks (from kv_cache.masks with a cache); each layer gets
        its kind's mask and RoPE. layers: each layer's parameters as arrays of their own
        (`layer_slices`), run as straight-line code (the cache may then be per layer:
        `kv_cache.per_layer`)."""
        c = self.config
        kinds = c.local_layers

        def rope_tables(local):
            return F.rope_tables(positions, F.rope_inv_freq(c.rotary_dim, *c.rope(local)))

        glob_rope = None if all(kinds) else rope_tables(False)
        local_rope = None
        if any(kinds):
            same = glob_rope is not None and c.rope(True) == c.rope(False)
            local_rope = glob_rope if same else rope_tables(True)
        block = BLOCKS[c.family]

        def layer(carry, p, slots, is_local):
            x, cache = carry
            rope = _per_kind(is_local, local_rope, glob_rope)
            if cache is None:
                x, _ = block(c, p, x, rope, _per_kind(is_local, masks[1], masks[0]), None)
                return x, None

            def kv(q, k, v, scale):
                return kv_cache.attend(cache, slots, is_local, q, k, v, index, masks, scale)

            return block(c, p, x, rope, None, kv)

        slots = kv_cache.layer_slots(c)
        if unroll or layers is not None:  # straight-line layers, each of a known kind (no lax.cond,
            # no no-op cache writes); with `layers`, no kernel slices a layer out of a stacked weight
            if layers is None:
                params = self._layer_params()
                layers = [jax.tree.map(lambda a, i=i: a[i], params) for i in range(c.num_layers)]
            for i in range(c.num_layers):
                f = functools.partial(layer, slots=tuple(int(s) for s in slots[i]), is_local=kinds[i])
                if self.remat:
                    f = jax.checkpoint(f, prevent_cse=False)
                x, cache = f((x, cache), layers[i])
            return x, cache

        def body(carry, xs):
            return layer(carry, *xs), None

        if self.remat:
            body = jax.checkpoint(body, prevent_cse=False)
        xs = (self._layer_params(), jnp.asarray(slots), jnp.asarray(kinds, dtype=bool))
        (x, cache), _ = jax.lax.scan(body, (x, cache), xs)
        return x, cache

    def _final_norm(self, x):
        if self.config.family == "gpt_neox":
            return F.layer_norm(
                x, self.final_norm[...], self.final_norm_bias[...], self.config.norm_eps
            )
        if self.config.family == "gemma":
            return F.gemma_rms_norm(x, self.final_norm[...], self.config.norm_eps)
        return F.rms_norm(x, self.final_norm[...], self.config.norm_eps)

    def _embed(self, input_ids):
        """Token embeddings [B, T, H]; Gemma scales them by sqrt(hidden) (in the compute dtype)."""
        x = jnp.take(self.embed[...], input_ids, axis=0)
        if self.config.family == "gemma":
            x = x * jnp.asarray(math.sqrt(self.config.hidden_size), jnp.float32).astype(x.dtype)
        return x

    def hidden_states(self, input_ids, attention_mask, positions=None):
        """Final-norm hidden states [B, T, H] of a left-padded batch."""
        input_ids = jnp.asarray(input_ids)
        attention_mask = jnp.asarray(attention_mask)
        if positions is None:
            positions = default_positions(attention_mask)
        slots = jnp.arange(input_ids.shape[1])
        x, _ = self._run_layers(
            self._embed(input_ids), positions, self._masks(slots, slots, attention_mask)
        )
        return self._final_norm(x)

    def unembed(self, hidden):
        """Head on hidden states [..., H]: LM logits [..., V], or per-token reward scores [..., labels]."""
        if self.config.num_labels:
            return hidden @ self.score[...]
        if self.config.tie_word_embeddings:
            logits = jnp.einsum("...h,vh->...v", hidden, self.embed[...])
        else:
            logits = hidden @ self.lm_head[...]
        return F.softcap(logits, self.config.final_logit_softcap)

    def last_token_index(self, input_ids, attention_mask):
        """[B] index of the rightmost real token (mask 1 and, if pad_token_id is set, not pad), as in
        transformers' *ForSequenceClassification; 0 for a row with none."""
        valid = jnp.asarray(attention_mask) != 0
        if self.config.pad_token_id is not None:
            valid = valid & (jnp.asarray(input_ids) != self.config.pad_token_id)
        t = valid.shape[1]
        return jnp.max(jnp.where(valid, jnp.arange(t), 0), axis=1)

    def __call__(self, input_ids, attention_mask, positions=None, return_hidden=False):
        hidden = self.hidden_states(input_ids, attention_mask, positions)
        if self.config.num_labels:
            idx = self.last_token_index(input_ids, attention_mask)
            out = self.unembed(hidden[jnp.arange(hidden.shape[0]), idx])
        else:
            out = self.unembed(hidden)
        return (out, hidden) if return_hidden else out

    # ---- KV cache

    def init_cache(self, batch: int, max_len: int, dtype=None) -> dict[str, jax.Array]:
        """Zeroed K/V for max_len slots: global layers {"k", "v"} [Lg, B, max_len, Hkv, D];
        sliding-window (local) layers a ring buffer {"k_local", "v_local"} [Ll, B, R, Hkv, D] with
        R = min(sliding_window, max_len): memory O(window), not O(sequence) (`kv_cache`)."""
        return kv_cache.init(self.config, batch, max_len, dtype or self.dtype)

    def grow_cache(self, cache, max_len: int) -> dict[str, jax.Array]:
        """The cache with room for max_len slots (what it holds kept; rings stop at the window)."""
        return kv_cache.grow(self.config, cache, max_len)

    def forward_cached(self, input_ids, positions, cache, cache_mask, index, unroll_layers: bool = False,
                       layers: list | None = None):
        """Run t new tokens against the cache; writes slots [index, index + t).

        input_ids, positions [B, t]; cache_mask [B, S] (1 = valid slot, the t new slots included;
        S = init_cache's max_len). Token i attends slot j iff cache_mask[b, j] and j <= index + i
        (and, on a sliding-window layer, index + i - j < window). Returns (logits [B, t, V]
        (reward model: per-token scores), hidden [B, t, H], cache). unroll_layers: the layers as
        straight-line code instead of a scan (same math; the decode step on an accelerator, where
        XLA copies each layer's weights out of the stacked arrays under a scan). layers: each
        layer's parameters as its own arrays (`layer_slices()`), run straight-line, usually
        against a per-layer cache (`kv_cache.per_layer`: {"k": [Lg x [B, S, Hkv, D]], "k_local":
        [Ll x [B, R, Hkv, D]], ...}; the decode step on an accelerator: no kernel slices a layer's
        weights or its cache out of a stacked array).
        """
        input_ids = jnp.asarray(input_ids)
        index = jnp.asarray(index, jnp.int32)
        masks = kv_cache.masks(self.config, cache, cache_mask, index, input_ids.shape[1])
        x, cache = self._run_layers(
            self._embed(input_ids), jnp.asarray(positions), masks, cache, index, unroll=unroll_layers,
            layers=layers)
        hidden = self._final_norm(x)
        return self.unembed(hidden), hidden, cache


def init_params(config: ModelConfig, seed: int = 0, dtype=jnp.float32, std: float = 0.02) -> dict:
    """Random parameters: normal(0, std) matrices, unit norm scales, zero biases (one jitted call)."""
    return _init_params(config, jnp.dtype(dtype), std, jax.random.key(seed))


_NORMS = ("attn_norm", "mlp_norm", "final_norm", "ln1_scale", "ln2_scale", "q_norm", "k_norm",
          "post_attn_norm", "post_mlp_norm")


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _init_params(config: ModelConfig, dtype, std: float, key) -> dict:
    shapes = param_shapes(config)
    sizes = [math.prod(s) for s in shapes.values()]
    flat = std * jax.random.normal(key, (sum(sizes),), jnp.float32)  # one draw: cheap to compile
    out, start = {}, 0
    for (name, shape), size in zip(shapes.items(), sizes):
        leaf = name.split(".")[-1]
        if leaf in _NORMS:  # Gemma's norm weights are zero-centred (scale 1 + w)
            out[name] = (jnp.zeros if config.family == "gemma" else jnp.ones)(shape, dtype)
        elif leaf.startswith("b") or leaf.endswith("_bias"):
            out[name] = jnp.zeros(shape, dtype)
        else:
            out[name] = flat[start : start + size].reshape(shape).astype(dtype)
        start += size
    return out


def build_model(
    config: ModelConfig, seed: int = 0, dtype=jnp.float32, remat: bool = False
) -> Transformer:
    """A randomly initialised model (tests, benchmarks)."""
    return Transformer(config, init_params(config, seed, dtype), remat=remat)

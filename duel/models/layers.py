"""Pure building blocks of the transformer: norms, RoPE, masked grouped-query attention, MLPs.

Everything here is a plain function of arrays. Inputs and outputs are in the compute dtype (the
parameter dtype); norms, RoPE and the softmax run in float32 inside.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

_NEG = float(np.finfo(np.float32).min)  # a finite "-inf": fully masked rows stay NaN-free


def rms_norm(x, scale, eps):
    """Llama RMSNorm: x / rms(x) in float32, cast back, times the learned scale."""
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
    return scale * y.astype(x.dtype)


def gemma_rms_norm(x, weight, eps):
    """Gemma RMSNorm: x / rms(x) times (1 + weight), all in float32, then cast back (the weight is
    stored zero-centred)."""
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + eps)
    return (y * (1.0 + weight.astype(jnp.float32))).astype(x.dtype)


def softcap(x, cap: float | None):
    """cap * tanh(x / cap) (Gemma's logit soft-capping); x unchanged when cap is None."""
    return x if cap is None else cap * jnp.tanh(x / cap)


def layer_norm(x, scale, bias, eps):
    """LayerNorm in float32, cast back to the input dtype."""
    x32 = x.astype(jnp.float32)
    mean = jnp.mean(x32, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x32 - mean), axis=-1, keepdims=True)
    y = (x32 - mean) * jax.lax.rsqrt(var + eps) * scale.astype(jnp.float32) + bias.astype(
        jnp.float32
    )
    return y.astype(x.dtype)


def rope_inv_freq(rotary_dim: int, theta: float, scaling: dict | None) -> np.ndarray:
    """Inverse frequencies [rotary_dim // 2] (float32), with HF's linear / llama3 scaling."""
    inv = 1.0 / (theta ** (np.arange(0, rotary_dim, 2, dtype=np.float64) / rotary_dim))
    kind = (scaling or {}).get("rope_type", "default")
    if kind == "linear":
        inv = inv / scaling["factor"]
    elif kind == "llama3":
        factor, lo, hi = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
        old = scaling["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv
        scaled = np.where(wavelen > old / lo, inv / factor, inv)
        smooth = (old / wavelen - lo) / (hi - lo)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = (wavelen >= old / hi) & (wavelen <= old / lo)
        inv = np.where(medium, smoothed, scaled)
    elif kind != "default":
        raise ValueError(f"rope type {kind!r} is not supported (default, linear, llama3)")
    return inv.astype(np.float32)


def rope_tables(positions, inv_freq):
    """cos, sin [B, T, 1, R] in float32 for integer positions [B, T] (NeoX 'rotate half' layout)."""
    freqs = positions.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq)  # [B, T, R/2]
    emb = jnp.concatenate([freqs, freqs], axis=-1)[:, :, None, :]
    return jnp.cos(emb), jnp.sin(emb)


def apply_rope(x, cos, sin):
    """Rotate the first R dims of each head of x [B, T, N, D]; the rest pass through."""
    r = cos.shape[-1]
    rot = x[..., :r].astype(jnp.float32)
    half = r // 2
    rotated = jnp.concatenate([-rot[..., half:], rot[..., :half]], axis=-1)
    out = (rot * cos + rotated * sin).astype(x.dtype)
    return out if r == x.shape[-1] else jnp.concatenate([out, x[..., r:]], axis=-1)


def attention_mask(q_slots, k_slots, key_mask, window: int | None = None):
    """Boolean [B, T, S]: query at slot q_slots[t] sees key slot s iff key_mask[b, s], s <= q, and
    (with a sliding window) q - s < window."""
    q = q_slots[:, None]
    k = k_slots[None, :]
    ok = (k <= q)[None] & (key_mask[:, None, :] != 0)
    if window is not None:
        ok = ok & ((q - k) < window)[None]
    return ok


def attention(q, k, v, mask, scale: float | None = None):
    """Grouped-query attention without repeating K/V.

    q [B, T, N, D]; k, v [B, S, K, D] with N = K * G (query head n uses kv head n // G);
    mask [B, T, S] bool; scores scaled by `scale` (None: 1 / sqrt(D)). Scores and softmax in
    float32; returns [B, T, N, D] in q's dtype.

    One query per row (a decode step) lowered for an accelerator takes `attention_one_query`
    (chosen when the program is lowered: `jax.lax.platform_dependent`): the same maths with the
    query axis dropped, which XLA:GPU fuses into one softmax kernel instead of three where the
    scores come from a matmul (grouped-query heads): 406 -> 357 kernels per Qwen2.5-0.5B decode step
    (bench/cost_model.py). The CPU backend keeps this function's own path, bit for bit.
    """
    if q.shape[1] == 1:
        return jax.lax.platform_dependent(q, k, v, mask, cpu=functools.partial(_attention, scale=scale),
                                          default=functools.partial(attention_one_query, scale=scale))
    return _attention(q, k, v, mask, scale)


def attention_one_query(q, k, v, mask, scale: float | None = None):
    """`attention` for T = 1 with the query axis dropped: scores [B, K, G, S], the softmax over
    their last (minor) axis."""
    b, t, n, d = q.shape
    assert t == 1, q.shape
    kv = k.shape[2]
    qg = q.reshape(b, kv, n // kv, d)
    scores = jnp.einsum("bkgd,bskd->bkgs", qg, k, preferred_element_type=jnp.float32)
    scores = scores * (1.0 / math.sqrt(d) if scale is None else scale)
    scores = jnp.where(mask[:, 0, None, None, :], scores, _NEG)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    return jnp.einsum("bkgs,bskd->bkgd", probs, v).reshape(b, t, n, d)


def _attention(q, k, v, mask, scale: float | None = None):
    b, t, n, d = q.shape
    kv = k.shape[2]
    qg = q.reshape(b, t, kv, n // kv, d)
    scores = jnp.einsum("btkgd,bskd->bkgts", qg, k, preferred_element_type=jnp.float32)
    scores = scores * (1.0 / math.sqrt(d) if scale is None else scale)
    scores = jnp.where(mask[:, None, None], scores, _NEG)
    probs = jax.nn.softmax(scores, axis=-1).astype(v.dtype)
    out = jnp.einsum("bkgts,bskd->btkgd", probs, v)
    return out.reshape(b, t, n, d)


def attention_reference(q, k, v, mask, scale: float | None = None):
    """Plain attention (K/V repeated to every query head), the reference for `attention`."""
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    g = q.shape[2] // k.shape[2]
    k, v = jnp.repeat(k, g, axis=2), jnp.repeat(v, g, axis=2)
    scores = jnp.einsum("btnd,bsnd->bnts", q.astype(jnp.float32), k.astype(jnp.float32))
    scores = jnp.where(mask[:, None], scores * scale, _NEG)
    probs = jax.nn.softmax(scores, axis=-1)
    return jnp.einsum("bnts,bsnd->btnd", probs, v.astype(jnp.float32)).astype(q.dtype)


ACTIVATIONS = {
    "silu": jax.nn.silu,
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "gelu_new": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: jax.nn.gelu(x, approximate=True),
    "gelu_fast": lambda x: jax.nn.gelu(x, approximate=True),
    "relu": jax.nn.relu,
}

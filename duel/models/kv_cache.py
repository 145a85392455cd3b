"""The sampler's KV cache: full length for global layers, a ring buffer of the window for
sliding-window (local) layers.

    {"k", "v"}              [Lg, B, S, Hkv, D]  global layers; absolute slot j lives in slot j
    {"k_local", "v_local"}  [Ll, B, R, Hkv, D]  local layers, R = min(sliding_window, S); absolute
                                                slot j lives in ring slot j mod R

A kind no layer has is absent (Llama: no local entries; Mistral: no global ones). Lg + Ll = L, in
layer order within each kind. Absolute slots are the sequence slots of `forward_cached`: token i
of a chunk written at `index` has slot index + i, and `cache_mask` [B, S] speaks of them.

A local layer's query at slot q sees slot j iff cache_mask[b, j], j <= q and q - j < window (as
`layers.attention_mask`). Which absolute slot a ring slot holds is implied by the slot being
written: ring slot r holds the latest j <= last written with j = r (mod R); j < 0 means never
written. A one-token step (decode) writes its ring slot first, then attends over the R slots (the
slot it overwrites, q - R, is out of the window or before the sequence). A longer chunk (prefill)
attends over the ring as it was plus the chunk itself, then writes the chunk's last min(t, R)
tokens: a prompt longer than the window keeps only its last R slots.

Under the layer scan a layer's kind is traced: with both kinds present (Gemma 3) every layer
writes both stacks, the other kind's write a no-op, and a `lax.cond` runs only its own kind's
attention over caches it only reads, so XLA updates the caches in place. Unrolled layers know
their kind and touch only their own stack.

Per layer (`per_layer`; the decode step on an accelerator, with `Transformer.layer_slices`): each
entry a list of the layers' own arrays, {"k": [Lg x [B, S, Hkv, D]], "k_local": [Ll x [B, R, Hkv,
D]], ...}, so no kernel reads or writes a layer's cache through a stacked array (a local layer's
own cache is its ring). Same slots, same math; only unrolled layers take it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from duel.models import layers as F
from duel.models.config import ModelConfig


def ring_length(c: ModelConfig, max_len: int) -> int:
    """Slots of a local layer's ring for a cache of max_len absolute slots."""
    return max_len if c.sliding_window is None else min(c.sliding_window, max_len)


def layer_slots(c: ModelConfig) -> np.ndarray:
    """[L, 2] int32: each layer's index in the global stack (k, v) and in the local one (k_local,
    v_local); the other kind's entry is that of the nearest layer of that kind before it (or 0)."""
    kinds = np.asarray(c.local_layers, bool)
    return np.maximum(np.stack([np.cumsum(~kinds), np.cumsum(kinds)], axis=1) - 1, 0).astype(np.int32)


def init(c: ModelConfig, batch: int, max_len: int, dtype) -> dict[str, jax.Array]:
    """Zeroed caches for max_len absolute slots (module docstring)."""
    n_local = sum(c.local_layers)
    cache = {}
    for name, layers, slots in (("", c.num_layers - n_local, max_len), ("_local", n_local, ring_length(c, max_len))):
        if layers:
            shape = (layers, batch, slots, c.num_kv_heads, c.head_dim)
            cache["k" + name], cache["v" + name] = jnp.zeros(shape, dtype), jnp.zeros(shape, dtype)
    return cache


def per_layer(cache: dict) -> dict[str, list[jax.Array]]:
    """The stacked cache as each layer's own arrays: [L, B, S, Hkv, D] -> L x [B, S, Hkv, D] (a
    copy; module docstring)."""
    return {name: [a[i] for i in range(a.shape[0])] for name, a in cache.items()}


def _slots(entry) -> int:
    """Slots of a cache entry: a stack [L, B, S, Hkv, D] or a list of [B, S, Hkv, D]."""
    return entry[0].shape[1] if isinstance(entry, list) else entry.shape[2]


def grow(c: ModelConfig, cache: dict, max_len: int) -> dict:
    """The cache (stacked or `per_layer`) with room for max_len absolute slots: global layers
    padded with empty slots; a ring shorter than the window grows to min(window, max_len) (it
    never wrapped: slot j is still at j, which is j mod the new length too)."""

    def pad(a, slots):
        widths = [(0, 0)] * a.ndim
        widths[-3] = (0, slots - a.shape[-3])  # [(L,) B, S, Hkv, D]
        return jnp.pad(a, widths)

    ring = ring_length(c, max_len)
    return {name: jax.tree.map(lambda a, n=name: pad(a, ring if n.endswith("_local") else max_len), entry)
            for name, entry in cache.items()}


def _held(last, ring: int):
    """[R] absolute slot held by each ring slot once slots up to `last` are written (< 0: none)."""
    r = jnp.arange(ring, dtype=jnp.int32)
    return last - jnp.mod(last - r, ring)


def local_keys(index, t: int, ring: int):
    """[R (+ t)] absolute slot of each key a local layer attends to: the ring after the write
    (t == 1), or the ring before it followed by the chunk's own t slots."""
    if t == 1:
        return _held(index, ring)
    return jnp.concatenate([_held(index - 1, ring), index + jnp.arange(t, dtype=jnp.int32)])


def masks(c: ModelConfig, cache: dict, cache_mask, index, t: int):
    """(global [B, t, S], local [B, t, R (+ t)]) attention masks of a chunk of t tokens at
    `index`; None for a kind no layer has."""
    cache_mask = jnp.asarray(cache_mask)
    s = cache_mask.shape[1]
    q_slots = index + jnp.arange(t, dtype=jnp.int32)
    glob = local = None
    if "k" in cache:
        glob = F.attention_mask(q_slots, jnp.arange(s, dtype=jnp.int32), cache_mask)
    if "k_local" in cache:
        keys = local_keys(index, t, _slots(cache["k_local"]))
        valid = (keys >= 0)[None] & (jnp.take(cache_mask, jnp.clip(keys, 0, s - 1), axis=1) != 0)
        local = F.attention_mask(q_slots, keys, valid, c.sliding_window)
    return glob, local


def _write(c, slot, new, at, keep):
    """c with new [B, n, Hkv, D] written at slots [at, at + n) of layer `slot` (None: c is the
    layer's own [B, S, Hkv, D]); where `keep` (a traced bool, or None) the old values are written
    back instead (a no-op write)."""
    if slot is None:
        return jax.lax.dynamic_update_slice(c, new.astype(c.dtype), (0, at, 0, 0))
    start = (slot, 0, at, 0, 0)
    new = new[None].astype(c.dtype)
    if keep is not None:
        new = jnp.where(keep, jax.lax.dynamic_slice(c, start, new.shape), new)
    return jax.lax.dynamic_update_slice(c, new, start)


def _layer(c, slot, dtype):
    if slot is None:
        return c.astype(dtype)
    return jax.lax.dynamic_index_in_dim(c, slot, 0, keepdims=False).astype(dtype)


def attend(cache, slots, is_local, q, k, v, index, masks, scale=None):
    """Write a layer's new k, v [B, t, Hkv, D] (RoPE applied) into its cache and attend q over it.

    slots: the layer's index in the global and in the local stack (`layer_slots`); is_local: its
    kind, a Python bool (unrolled layers: only that kind's cache is touched) or traced (the layer
    scan: with both kinds present every layer writes both stacks, the other kind's write a no-op,
    and `lax.cond` runs only its own kind's attention, over caches it only reads). masks: from
    `masks`. Returns (attention output [B, t, N, D], cache). A `per_layer` cache: only with a
    Python bool is_local; the layer's own two arrays are written and read."""
    if any(isinstance(e, list) for e in cache.values()):
        names, slot = (("k_local", "v_local"), slots[1]) if is_local else (("k", "v"), slots[0])
        own = {n: cache[n][slot] for n in names}
        a, own = attend(own, (None, None), is_local, q, k, v, index, masks, scale)
        cache = dict(cache)
        for n in names:
            cache[n] = [*cache[n][:slot], own[n], *cache[n][slot + 1 :]]
        return a, cache
    static = isinstance(is_local, bool)
    mixed = "k" in cache and "k_local" in cache and not static
    write_global = "k" in cache and not (static and is_local)
    write_local = "k_local" in cache and not (static and not is_local)
    t = k.shape[1]
    cache = dict(cache)
    chunk = None
    if write_global:
        keep = is_local if mixed else None
        cache["k"] = _write(cache["k"], slots[0], k, index, keep)
        cache["v"] = _write(cache["v"], slots[0], v, index, keep)
    if write_local:
        keep = ~is_local if mixed else None
        ring = cache["k_local"].shape[-3]
        if t == 1:  # write, then attend over the ring
            cache["k_local"] = _write(cache["k_local"], slots[1], k, jnp.mod(index, ring), keep)
            cache["v_local"] = _write(cache["v_local"], slots[1], v, jnp.mod(index, ring), keep)
        else:  # attend over the ring as it was plus the chunk; keep the chunk's last min(t, ring)
            n = min(t, ring)
            where = jnp.mod(index + t - n + jnp.arange(n, dtype=jnp.int32), ring)
            chunk = []
            for name, new in (("k_local", k), ("v_local", v)):
                old = _layer(cache[name], slots[1], cache[name].dtype)
                new = new.astype(old.dtype)  # rounded as if read back from the cache
                chunk.append(jnp.concatenate([old, new], axis=1))
                cache[name] = _write(cache[name], slots[1], old.at[:, where].set(new[:, t - n :]), 0, keep)

    def glob(cache, chunk):
        keys, values = _layer(cache["k"], slots[0], q.dtype), _layer(cache["v"], slots[0], q.dtype)
        return F.attention(q, keys, values, masks[0], scale)

    def local(cache, chunk):
        if chunk is None:
            chunk = _layer(cache["k_local"], slots[1], q.dtype), _layer(cache["v_local"], slots[1], q.dtype)
        return F.attention(q, chunk[0].astype(q.dtype), chunk[1].astype(q.dtype), masks[1], scale)

    if mixed:
        return jax.lax.cond(is_local, local, glob, cache, chunk), cache
    return (local if write_local else glob)(cache, chunk), cache

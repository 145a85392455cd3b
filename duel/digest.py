"""Digests of weights: which weights a generator holds (tests and logs)."""

from __future__ import annotations

import hashlib

import jax
import numpy as np


def flat_weights(tree, dtype=None) -> dict[str, np.ndarray]:
    """Pytree of arrays -> {"a/b/c": host ndarray}, optionally cast (e.g. to bfloat16)."""
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    out = {}
    for path, leaf in leaves:
        name = "/".join(_key_name(k) for k in path)
        arr = np.asarray(jax.device_get(leaf))
        if dtype is not None and np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(dtype)
        out[name] = arr
    return out


def _key_name(k) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def checksum(flat: dict[str, np.ndarray]) -> str:
    """Short digest of flat weights (tests and logs: which weights a generator holds)."""
    h = hashlib.sha1()
    for k in sorted(flat):
        h.update(k.encode())
        h.update(np.ascontiguousarray(flat[k]).tobytes())
    return h.hexdigest()[:16]

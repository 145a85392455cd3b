"""Every random draw's key derives from (seed, step, purpose): one stream tag per purpose.

Deterministic from (seed, step, path), so a resumed run reproduces the one that was never
stopped (invariant 3).
"""

from __future__ import annotations

import jax
import numpy as np

# stream tags for fold_in: one key per purpose, never reused across purposes
KEY_GENERATE, KEY_SELECT, KEY_LABEL, KEY_LEARN, KEY_EVAL, KEY_SYNTHETIC, KEY_DROPOUT = range(7)


def step_key(seed: int, step: int, *path: int) -> jax.Array:
    """PRNGKey(seed) folded with the step, then with each element of path."""
    key = jax.random.fold_in(jax.random.PRNGKey(seed), step)
    for p in path:
        key = jax.random.fold_in(key, p)
    return key


def step_rng(seed: int, step: int, *path: int) -> np.random.Generator:
    """NumPy generator for host-side draws (label sampling), same derivation rule."""
    return np.random.default_rng([int(seed), int(step), *[int(p) for p in path]])

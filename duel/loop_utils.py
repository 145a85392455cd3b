"""Small pure helpers the loop needs: per-step keys, the prompt stream, batch splits, weight digests.

Everything here is deterministic from (seed, step, position) so that a resumed run reproduces
the one that was never stopped (invariant 3).
"""

from __future__ import annotations

import dataclasses
import hashlib

import jax
import numpy as np

from duel.records import CandidateBatch, PairBatch, PromptBatch

# stream tags for fold_in: one key per purpose, never reused across purposes
KEY_GENERATE, KEY_SELECT, KEY_LABEL, KEY_LEARN, KEY_EVAL, KEY_SYNTHETIC = range(6)


def step_key(seed: int, step: int, *path: int) -> jax.Array:
    """PRNGKey(seed) folded with the step, then with each element of path."""
    key = jax.random.fold_in(jax.random.PRNGKey(seed), step)
    for p in path:
        key = jax.random.fold_in(key, p)
    return key


def step_rng(seed: int, step: int, *path: int) -> np.random.Generator:
    """NumPy generator for host-side draws (label sampling), same derivation rule."""
    return np.random.default_rng([int(seed), int(step), *[int(p) for p in path]])


@dataclasses.dataclass
class PromptStream:
    """Prompt order with an explicit position counter (`duel.data.stream_rows` over row indices).

    `position` counts prompts handed out since the start; epoch e is a permutation seeded by
    (seed, e). Restoring `position` restores the stream exactly.
    """

    num_prompts: int
    seed: int
    position: int = 0

    def __post_init__(self):
        if self.num_prompts <= 0:
            raise ValueError("PromptStream: the prompt set is empty")

    def take(self, n: int) -> tuple[int, list[int]]:
        """-> (index of the first prompt in the stream, rows of the next n prompts)."""
        from duel.data import stream_rows

        start = self.position
        rows = [int(r) for r in stream_rows(range(self.num_prompts), start, n, self.seed)]
        self.position += n
        return start, rows


def shard_bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous, near-equal [lo, hi) slices of n rows over `shards` (empty ones dropped)."""
    sizes = [n // shards + (i < n % shards) for i in range(shards)]
    out, lo = [], 0
    for s in sizes:
        if s:
            out.append((lo, lo + s))
        lo += s
    return out


def slice_prompts(batch: PromptBatch, lo: int, hi: int) -> PromptBatch:
    return PromptBatch(prompt_ids=batch.prompt_ids[lo:hi], texts=batch.texts[lo:hi],
                       input_ids=batch.input_ids[lo:hi], attention_mask=batch.attention_mask[lo:hi],
                       step=batch.step, index=batch.index + lo)


def _pad_cat(arrays: list[np.ndarray], axis: int, fill=0) -> np.ndarray:
    """Concatenate on axis 0 after right-padding `axis` to the longest."""
    width = max(a.shape[axis] for a in arrays)
    out = []
    for a in arrays:
        pad = [(0, 0)] * a.ndim
        pad[axis] = (0, width - a.shape[axis])
        out.append(np.pad(a, pad, constant_values=fill))
    return np.concatenate(out, axis=0)


def _left_pad_cat(arrays: list[np.ndarray], fill=0) -> np.ndarray:
    width = max(a.shape[1] for a in arrays)
    return np.concatenate([np.pad(a, [(0, 0), (width - a.shape[1], 0)], constant_values=fill)
                           for a in arrays], axis=0)


def concat_pairs(parts: list[PairBatch], pad_id: int = 0) -> PairBatch:
    """Join the generators' PairBatches (in shard order) into one batch for the learner."""
    if len(parts) == 1:
        return parts[0]
    versions = {p.version for p in parts}
    if len(versions) != 1:
        raise ValueError(f"concat_pairs: shards sampled with different versions {sorted(versions)}")
    cs = [p.candidates for p in parts]
    prompts = PromptBatch(
        prompt_ids=[x for c in cs for x in c.prompts.prompt_ids],
        texts=[x for c in cs for x in c.prompts.texts],
        input_ids=_left_pad_cat([c.prompts.input_ids for c in cs], fill=pad_id),
        attention_mask=_left_pad_cat([c.prompts.attention_mask for c in cs]),
        step=cs[0].prompts.step, index=cs[0].prompts.index)
    cand = CandidateBatch(
        prompts=prompts,
        tokens=_pad_cat([c.tokens for c in cs], 2, fill=pad_id),
        mask=_pad_cat([c.mask for c in cs], 2),
        policy_logprobs=_pad_cat([c.policy_logprobs for c in cs], 2),
        ref_logprobs=_pad_cat([c.ref_logprobs for c in cs], 2),
        features=np.concatenate([c.features for c in cs], 0),
        texts=[x for c in cs for x in c.texts],
        version=cs[0].version,
        from_reference=np.concatenate([c.from_reference for c in cs], 0))
    diag = {}
    for k in parts[0].diagnostics:
        vals = [p.diagnostics[k] for p in parts if k in p.diagnostics]
        diag[k] = float(max(vals)) if k.startswith("time_") else float(np.mean(vals))
    sp = [p.synthetic_prob if p.synthetic_prob is not None else np.full(len(p.pairs), np.nan, np.float32)
          for p in parts]
    return PairBatch(candidates=cand, pairs=np.concatenate([p.pairs for p in parts]),
                     identical=np.concatenate([p.identical for p in parts]),
                     synthetic=np.concatenate([p.synthetic for p in parts]),
                     strategy=parts[0].strategy, diagnostics=diag,
                     pair_ids=[x for p in parts for x in p.pair_ids],
                     synthetic_prob=np.concatenate(sp).astype(np.float32))


def pair_id(step: int, index: int) -> str:
    """Stable id of the pair asked for prompt-stream position `index` at `step`."""
    return f"s{int(step)}-i{int(index)}"


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

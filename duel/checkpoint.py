"""Run checkpoints with Orbax: a pytree of arrays plus JSON metadata, atomic, keep-last-N.

    save(run_dir, step, state, meta={"counters": {...}, "config": to_dict(cfg)}, keep=3)
    r = restore(run_dir, template)        # newest valid checkpoint, or None when there is none
    r.step, r.state, r.meta, r.refused    # refused: messages about newer checkpoints skipped

`state` is any pytree of arrays (jax.Array incl. bfloat16 and typed PRNG key arrays, NumPy
arrays): policy parameters, optimizer state, ERM parameters and optimizer, replay buffers, RNG
keys. Counters (steps, queries, synthetic labels, weights version, prompt-iterator position) and
the resolved config go in `meta` (JSON). `template` is a pytree of the same structure whose
leaves give dtype, shape and sharding (concrete arrays or jax.ShapeDtypeStruct); typed PRNG keys
in the template come back as typed keys.

Layout: RUN_DIR/checkpoints/STEP/{state,meta}. Orbax writes into a temporary directory and
renames it when complete, so a crash mid-save never leaves a step that looks finished. Every
leaf's SHA-256 is stored in the metadata and checked on restore: a checkpoint whose files were
truncated or garbled is refused with a message (logged, and returned in `Restored.refused`) and
the previous one is used. Saving step s moves checkpoints with step >= s (refused ones, or a
timeline abandoned by a resume) aside to RUN_DIR/checkpoints-superseded/ instead of deleting.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

log = logging.getLogger(__name__)
_ITEMS = ("state", "meta")


class CheckpointError(RuntimeError):
    """No usable checkpoint, or a state that does not fit its template."""


@dataclasses.dataclass
class Restored:
    step: int
    state: Any
    meta: dict
    refused: list[str] = dataclasses.field(default_factory=list)  # newer checkpoints skipped


def checkpoint_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def _manager(run_dir, keep: int | None = None, create: bool = False) -> ocp.CheckpointManager:
    opts = ocp.CheckpointManagerOptions(max_to_keep=keep, create=create,
                                        enable_async_checkpointing=False,
                                        cleanup_tmp_directories=create)
    return ocp.CheckpointManager(checkpoint_dir(run_dir).absolute(), options=opts,
                                 item_names=_ITEMS)


def all_steps(run_dir: str | Path) -> list[int]:
    """Finalized checkpoint steps, oldest first (Orbax temporaries are not steps)."""
    if not checkpoint_dir(run_dir).is_dir():
        return []
    with _manager(run_dir) as m:
        return sorted(m.all_steps())


def latest_step(run_dir: str | Path) -> int | None:
    steps = all_steps(run_dir)
    return steps[-1] if steps else None


# -- typed PRNG keys and checksums -------------------------------------------------------------

def _is_key(x) -> bool:
    dtype = getattr(x, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _impl_name(x) -> str:
    if isinstance(x, jax.Array):
        return str(jax.random.key_impl(x))
    return str(x.dtype._impl.name)  # a ShapeDtypeStruct of keys (no public accessor)


def _encode(tree):
    """Typed key arrays -> their uint32 key data (Orbax stores plain arrays)."""
    def enc(x):
        if not _is_key(x):
            return x
        if isinstance(x, jax.Array):
            return jax.random.key_data(x)
        out = jax.eval_shape(jax.random.key_data, x)
        return jax.ShapeDtypeStruct(out.shape, out.dtype, sharding=getattr(x, "sharding", None))
    return jax.tree.map(enc, tree)


def _abstract(template):
    """Restore targets: a ShapeDtypeStruct without sharding lands on the default device."""
    def fill(x):
        if isinstance(x, jax.ShapeDtypeStruct) and x.sharding is None:
            device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
            return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device)
        return x
    return jax.tree.map(fill, template)


def _key_impls(tree) -> dict[str, str]:
    return {jax.tree_util.keystr(p): _impl_name(x)
            for p, x in jax.tree_util.tree_leaves_with_path(tree) if _is_key(x)}


def _checksums(encoded) -> dict[str, str]:
    out = {}
    for path, x in jax.tree_util.tree_leaves_with_path(encoded):
        a = np.asarray(jax.device_get(x))
        h = hashlib.sha256(f"{a.dtype.str}|{a.shape}|".encode())
        h.update(np.ascontiguousarray(a).tobytes())
        out[jax.tree_util.keystr(path)] = h.hexdigest()
    return out


# -- save ------------------------------------------------------------------------------------

def save(run_dir: str | Path, step: int, state: Any, meta: dict | None = None, *,
         keep: int = 3) -> Path:
    """Atomically write checkpoint `step`; keep the newest `keep`. Returns its directory."""
    step = int(step)
    _supersede(run_dir, step)
    encoded = _encode(state)
    record = {"meta": meta or {}, "checksums": _checksums(encoded), "keys": _key_impls(state),
              "saved_at": time.time()}
    with _manager(run_dir, keep=keep, create=True) as m:
        m.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(encoded),
                                             meta=ocp.args.JsonSave(record)), force=True)
        m.wait_until_finished()
    return checkpoint_dir(run_dir) / str(step)


def _supersede(run_dir, step: int) -> None:
    newer = [s for s in all_steps(run_dir) if s >= step]
    if not newer:
        return
    aside = Path(run_dir) / "checkpoints-superseded"
    aside.mkdir(parents=True, exist_ok=True)
    for s in newer:
        dest = aside / f"{s}-{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**6}"
        shutil.move(str(checkpoint_dir(run_dir) / str(s)), dest)
        log.warning("checkpoint %s: step %d >= the step being saved (%d); moved aside to %s",
                    checkpoint_dir(run_dir), s, step, dest)


# -- restore ---------------------------------------------------------------------------------

def _restore_step(m: ocp.CheckpointManager, step: int, template) -> Restored:
    record = m.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
    if not isinstance(record, dict) or "checksums" not in record:
        raise CheckpointError("metadata is missing or not written by duel.checkpoint")
    encoded_template = _encode(template)
    sums = record["checksums"]
    want = {jax.tree_util.keystr(p) for p, _ in
            jax.tree_util.tree_leaves_with_path(encoded_template)}
    if want != set(sums):
        raise CheckpointError(
            f"state structure differs from the template: missing {sorted(want - set(sums))[:5]}, "
            f"unexpected {sorted(set(sums) - want)[:5]}")
    impls = _key_impls(template)
    if impls != record.get("keys", {}):
        raise CheckpointError(f"PRNG keys differ from the template: saved {record.get('keys')}, "
                              f"template {impls}")
    state = m.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(_abstract(encoded_template)))).state
    got = _checksums(state)
    bad = [k for k in sums if got.get(k) != sums[k]]
    if bad:
        raise CheckpointError(f"checksum mismatch in {len(bad)} arrays (first: {bad[0]})")
    leaves, treedef = jax.tree.flatten(state)
    tleaves = jax.tree.leaves(template)
    leaves = [jax.random.wrap_key_data(x, impl=_impl_name(t)) if _is_key(t) else x
              for x, t in zip(leaves, tleaves)]
    return Restored(step, jax.tree.unflatten(treedef, leaves), record["meta"])


def restore(run_dir: str | Path, template: Any, step: int | None = None) -> Restored | None:
    """Restore the newest valid checkpoint (or exactly `step`); None when there is none.

    A corrupt or partial checkpoint is refused with a warning and the previous one is tried;
    the messages are in `Restored.refused`. Raises CheckpointError when every one is refused.
    """
    steps = all_steps(run_dir)
    if step is not None:
        if step not in steps:
            raise CheckpointError(f"{checkpoint_dir(run_dir)}: no checkpoint for step {step}; "
                                  f"available: {steps}")
        steps = [s for s in steps if s <= step]
    if not steps:
        return None
    refused = []
    with _manager(run_dir) as m:
        for s in reversed(steps):
            try:
                r = _restore_step(m, s, template)
            except Exception as e:  # noqa: BLE001 (TensorStore raises many types)
                msg = (f"checkpoint {checkpoint_dir(run_dir) / str(s)} refused (corrupt or "
                       "partial): "
                       f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
                log.warning(msg)
                refused.append(msg)
                if step is not None:
                    break
                continue
            if refused:
                log.warning("restored the previous checkpoint, step %d", s)
            r.refused = refused
            return r
    raise CheckpointError(f"{checkpoint_dir(run_dir)}: no usable checkpoint; "
                          + "; ".join(refused))

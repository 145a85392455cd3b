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
renames it when complete, so a crash mid-save never leaves a step that looks finished; a save
that fails (a full disk: ENOSPC) removes that temporary directory and raises
`CheckpointWriteError`, and the older checkpoints stay as they were (keep-last-N deletes only
after a save succeeded). Every
leaf's SHA-256 is stored in the metadata and checked on restore: a checkpoint whose files were
truncated or garbled is refused with a message (logged, and returned in `Restored.refused`) and
the previous one is used. Saving step s moves checkpoints with step >= s (refused ones, or a
timeline abandoned by a resume) aside to RUN_DIR/checkpoints-superseded/ instead of deleting.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import os
import re
import shutil
import threading
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


class CheckpointWriteError(CheckpointError):
    """Writing a checkpoint failed (full disk, I/O error); its partial files were removed."""

    def __init__(self, message: str, errno_: int | None = None):
        super().__init__(message)
        self.errno = errno_


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
    """Typed key arrays -> their uint32 key data (Orbax stores plain arrays); with several JAX
    processes, process-local arrays -> NumPy (see `_host_local`)."""
    def enc(x):
        if _is_key(x):
            if isinstance(x, jax.Array):
                x = jax.random.key_data(x)
            else:
                out = jax.eval_shape(jax.random.key_data, x)
                x = jax.ShapeDtypeStruct(out.shape, out.dtype, sharding=getattr(x, "sharding", None))
        if _host_local(x):
            return np.asarray(x) if isinstance(x, jax.Array) else np.empty(x.shape, x.dtype)
        return x
    return jax.tree.map(enc, tree)


def _host_local(x) -> bool:
    """With several JAX processes (a multi-host learner): an array on this process's devices
    only. Such state (ERM, replay buffer, keys) is held alike by every process; Orbax writes
    global arrays only, so it is saved as NumPy, written once by the primary process."""
    if jax.process_count() == 1 or not isinstance(x, (jax.Array, jax.ShapeDtypeStruct)):
        return False
    s = getattr(x, "sharding", None)
    return s is None or all(d.process_index == jax.process_index() for d in s.device_set)


def _abstract(template):
    """Restore targets: a ShapeDtypeStruct without sharding lands on the default device; a
    concrete array becomes its shape, dtype and sharding (restored into that layout)."""
    def fill(x):
        if isinstance(x, jax.ShapeDtypeStruct) and x.sharding is None:
            device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
            return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device)
        if isinstance(x, jax.Array):
            return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding)
        return x
    return jax.tree.map(fill, template)


def _local(x, t):
    """A restored host-local leaf (NumPy) back on its template's device."""
    s = getattr(t, "sharding", None)
    return jax.device_put(np.asarray(x), s if isinstance(s, jax.sharding.SingleDeviceSharding)
                          else jax.local_devices()[0])


def _key_impls(tree) -> dict[str, str]:
    return {jax.tree_util.keystr(p): _impl_name(x)
            for p, x in jax.tree_util.tree_leaves_with_path(tree) if _is_key(x)}


def _checksums(encoded) -> dict[str, str]:
    """SHA-256 per leaf. An array spread over several processes is gathered first: every
    process computes the same digests (a collective, every process calls save/restore)."""
    from duel.sharding import gather

    out = {}
    for path, x in jax.tree_util.tree_leaves_with_path(encoded):
        a = gather(x)
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
    threads = set(threading.enumerate())
    try:
        with _manager(run_dir, keep=keep, create=True) as m, _io_errors_reported_once():
            m.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(encoded),
                                                 meta=ocp.args.JsonSave(record)), force=True)
            m.wait_until_finished()
    except Exception as e:
        # a failed save leaves Orbax's temporary directory, which never looks finished; remove
        # it now (the space is needed) once Orbax's writer threads, which may still be writing
        # into it, are done; older checkpoints are deleted only after a save succeeds
        for t in set(threading.enumerate()) - threads:
            if type(t).__module__.startswith("orbax"):
                t.join(timeout=120)
        for tmp in checkpoint_dir(run_dir).glob(f"{step}.orbax-checkpoint-tmp*"):
            shutil.rmtree(tmp, ignore_errors=True)
        code = os_error(e)
        if code is None:
            raise
        raise CheckpointWriteError(
            f"{checkpoint_dir(run_dir) / str(step)}: writing checkpoint step {step} failed "
            f"({os.strerror(code)}); its partial files were removed, checkpoints "
            f"{all_steps(run_dir)} are intact", code) from e
    return checkpoint_dir(run_dir) / str(step)


class _DropIOErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "os_error_code=" not in record.getMessage()


@contextlib.contextmanager
def _io_errors_reported_once():
    """Orbax's writer threads log a TensorStore I/O error with its traceback before `save`
    raises it; the caller reports it once, as CheckpointWriteError, so those logs are dropped."""
    f = _DropIOErrors()
    logging.getLogger("absl").addFilter(f)
    try:
        yield
    finally:
        logging.getLogger("absl").removeFilter(f)


def os_error(e: BaseException) -> int | None:
    """The errno behind a failed write: an OSError's, or TensorStore's `[os_error_code='N']`
    (it reports a full disk as a ValueError); None when `e` is not an I/O error."""
    seen = 0
    while e is not None and seen < 8:
        if isinstance(e, OSError) and e.errno:
            return int(e.errno)
        m = re.search(r"os_error_code='?(\d+)|\[Errno (\d+)\]", str(e))
        if m:
            return int(m.group(1) or m.group(2))
        e, seen = e.__cause__ or e.__context__, seen + 1
    return None


def _supersede(run_dir, step: int) -> None:
    newer = [s for s in all_steps(run_dir) if s >= step]
    if jax.process_count() > 1:  # several processes save together: the primary one moves
        from jax.experimental.multihost_utils import sync_global_devices

        sync_global_devices(f"duel.checkpoint.supersede.{step}.listed")
        if jax.process_index() == 0:
            _move_aside(run_dir, step, newer)
        sync_global_devices(f"duel.checkpoint.supersede.{step}.moved")
        return
    _move_aside(run_dir, step, newer)


def _move_aside(run_dir, step: int, newer: list[int]) -> None:
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
    leaves = [_local(x, t) if _host_local(t) else x for x, t in zip(leaves, tleaves)]
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

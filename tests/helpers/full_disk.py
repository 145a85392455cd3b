"""A learner whose disk fills up: test code only, loaded by the Ray worker by name.

    full_disk.install(monkeypatch)   # the loop's learner is then a FullDiskLearnerActor

While `$DUEL_TEST_ORACLE_DIR/disk_full_at_step` exists and holds k, every ledger append of
learner step >= k (0-based) writes half of its bytes and then fails with ENOSPC, as a disk
that fills up mid-write does. Only `duel.ledger`'s write indirection is replaced, in the
learner's process.

While `$DUEL_TEST_ORACLE_DIR/checkpoint_disk_full_at_step` holds k, every checkpoint of step
>= k fails the same way: Orbax writes the arrays into its temporary directory, then the
metadata file gets half of its bytes and ENOSPC (through Orbax's own handler registry: the
checkpoint's JSON item is saved by `FullDiskJsonHandler`). Metrics are written normally.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
from pathlib import Path
from unittest import mock

import orbax.checkpoint as ocp
import ray

import duel.ledger
from learner.learner import Learner
from tests.helpers.counting_oracle import ENV

FLAG = "disk_full_at_step"
CHECKPOINT_FLAG = "checkpoint_disk_full_at_step"
_full = {"on": False, "torn": set()}


class FullDiskJsonHandler(ocp.JsonCheckpointHandler):
    """Writes half of the checkpoint's metadata file, then fails as a full disk does."""

    async def async_save(self, directory, item=None, args=None):
        path = Path(str(directory)) / "metadata"
        data = json.dumps(args.item).encode()
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


@ocp.args.register_with_handler(FullDiskJsonHandler, for_save=True)
@dataclasses.dataclass
class FullDiskJsonSave(ocp.args.JsonSave):
    pass


@ocp.args.register_with_handler(FullDiskJsonHandler, for_restore=True)
@dataclasses.dataclass
class FullDiskJsonRestore(ocp.args.JsonRestore):  # Orbax wants both directions registered
    pass


def _write(fd: int, data) -> int:
    if not _full["on"]:
        return os.write(fd, data)
    if fd in _full["torn"]:  # the second write of this append: the disk is full now
        _full["torn"].discard(fd)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    _full["torn"].add(fd)
    return os.write(fd, data[: max(1, len(data) // 2)])  # a torn tail for the ledger to undo


class FullDiskLearner(Learner):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        duel.ledger._os_write = _write

    def update(self, labeled, step: int) -> dict:
        flag = Path(os.environ[ENV]) / FLAG
        _full["on"] = flag.exists() and step >= int(flag.read_text())
        return super().update(labeled, step)

    def save(self, step: int, meta: dict) -> str:
        flag = Path(os.environ[ENV]) / CHECKPOINT_FLAG
        if flag.exists() and step >= int(flag.read_text()):
            with mock.patch.object(ocp.args, "JsonSave", FullDiskJsonSave):
                return super().save(step, meta)
        return super().save(step, meta)

    def ledger_bytes(self) -> int:
        return sum(Path(p).stat().st_size for p in duel.ledger.ledger_files(self.run_dir))


FullDiskLearnerActor = ray.remote(num_cpus=0, max_restarts=0)(FullDiskLearner)


def install(monkeypatch) -> None:
    """Make the loop create its (single-process) learner as a FullDiskLearnerActor."""
    import importlib

    for name in ("learner.group", "learner.loop"):  # whichever module creates LearnerActor
        module = importlib.import_module(name)
        if hasattr(module, "LearnerActor"):
            monkeypatch.setattr(module, "LearnerActor", FullDiskLearnerActor)
            return
    raise AttributeError("no module of the loop creates LearnerActor (learner.group, learner.loop)")

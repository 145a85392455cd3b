"""A learner whose ledger disk fills up: test code only, loaded by the Ray worker by name.

    monkeypatch.setattr(learner.loop, "LearnerActor", full_disk.FullDiskLearnerActor)

While `$DUEL_TEST_ORACLE_DIR/disk_full_at_step` exists and holds k, every ledger append of
learner step >= k (0-based) writes half of its bytes and then fails with ENOSPC, as a disk
that fills up mid-write does. Only `duel.ledger`'s write indirection is replaced, in the
learner's process; checkpoints and metrics are written normally.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import ray

import duel.ledger
from learner.learner import Learner
from tests.learner.counting_oracle import ENV

FLAG = "disk_full_at_step"
_full = {"on": False, "torn": set()}


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

    def ledger_bytes(self) -> int:
        return sum(Path(p).stat().st_size for p in duel.ledger.ledger_files(self.run_dir))


FullDiskLearnerActor = ray.remote(num_cpus=0, max_restarts=0)(FullDiskLearner)

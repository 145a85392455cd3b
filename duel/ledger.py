"""The label ledger (DESIGN.md invariant 2): every paid oracle answer, durable before use.

    ledger = Ledger(run_dir)                       # opens RUN_DIR/ledger/, repairs a torn tail
    ledger.append(entries_from_batch(labeled, step))   # written, flushed and fsynced on return
    ledger.get(pair_id)                            # a resumed run reuses the label, never re-pays
    len(ledger); ledger.to_pandas(); ledger.to_dataset()

Format: JSON Lines segments `RUN_DIR/ledger/segment-00000.jsonl`, one entry per line, rolled
over by size; a batch never straddles two segments. pandas (`read_json(lines=True)`) and
`datasets.load_dataset("json", data_files=ledger_files(run_dir))` read them directly.

Failure modes: a crash mid-write leaves a torn last line, which opening the ledger detects,
reports (`Ledger.messages`, logging) and truncates away; a failed write (ENOSPC, EIO) truncates
the segment back to the last complete entry and raises `LedgerError`, so every earlier entry
stays intact. One writer per run (the learner); readers may open it read-only at any time.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

SEGMENT_BYTES = 64 << 20
_os_write = os.write  # indirection so tests can simulate a full disk partway through a write


class LedgerError(RuntimeError):
    """The ledger cannot be written or read safely; the message says what to do."""


@dataclasses.dataclass
class LedgerEntry:
    """One oracle answer for one pair (a, b) of responses to one prompt."""

    pair_id: str  # unique per pair: the ledger key
    prompt_id: str
    tokens_a: list[int]  # response a, unpadded
    tokens_b: list[int]
    version: int  # policy weights version the pair was sampled with
    strategy: str  # exploration strategy that chose the pair
    prob_a: float  # oracle P(a > b)
    label: int  # 1 when a was preferred (sampled from prob_a)
    step: int  # learner step that asked for it
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)  # latency_s, retries, ...
    prompt: str | None = None  # texts, when known (for humans and `datasets`)
    response_a: str | None = None
    response_b: str | None = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), default=_jsonable, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict) -> LedgerEntry:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if hasattr(x, "tolist"):  # np.ndarray, jax.Array
        return x.tolist()
    raise TypeError(f"ledger: cannot store a {type(x).__name__} as JSON")


def entries_from_batch(labeled, step: int) -> list[LedgerEntry]:
    """Ledger entries for the pairs of a LabeledBatch that the oracle answered now.

    Synthetic (ERM-labelled) pairs and pairs reused from the ledger are skipped: the ledger holds
    exactly the paid queries, so `len(ledger)` equals the query count.
    """
    pb = labeled.pairs
    cb = pb.candidates
    if len(pb.pair_ids) != len(cb.prompts):
        raise LedgerError(f"PairBatch has {len(pb.pair_ids)} pair_ids for {len(cb.prompts)} "
                          "prompts; every pair needs a unique pair_id before labelling")
    paid = ~np.asarray(pb.synthetic, bool)
    if labeled.from_ledger is not None:
        paid &= ~np.asarray(labeled.from_ledger, bool)
    out = []
    for p in np.flatnonzero(paid):
        a, b = (int(i) for i in pb.pairs[p])
        toks = [cb.tokens[p, i][cb.mask[p, i] == 1].astype(int).tolist() for i in (a, b)]
        out.append(LedgerEntry(
            pair_id=str(pb.pair_ids[p]), prompt_id=str(cb.prompts.prompt_ids[p]),
            tokens_a=toks[0], tokens_b=toks[1], version=int(cb.version), strategy=pb.strategy,
            prob_a=float(labeled.prob_a[p]), label=int(labeled.label[p]), step=int(step),
            metadata=dict(labeled.metadata[p]) if labeled.metadata else {},
            prompt=cb.prompts.texts[p] if cb.prompts.texts else None,
            response_a=cb.texts[p][a] if cb.texts else None,
            response_b=cb.texts[p][b] if cb.texts else None))
    return out


def ledger_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "ledger"


def ledger_files(run_dir: str | Path) -> list[str]:
    """The segment paths in order (for pandas / `datasets.load_dataset("json", ...)`)."""
    return [str(p) for p in sorted(ledger_dir(run_dir).glob("segment-*.jsonl"))]


def _scan(path: Path, repair: bool, messages: list[str]) -> list[tuple[dict, int, int]]:
    """Parse one segment -> [(row, offset, length)]. A torn last line is dropped (and truncated
    away when repairing); a bad line anywhere else is corruption we refuse to guess about."""
    data = path.read_bytes()
    rows, offset = [], 0
    while offset < len(data):
        end = data.find(b"\n", offset)
        line = data[offset:] if end < 0 else data[offset:end]
        try:
            if end < 0:
                raise ValueError("no newline")
            rows.append((json.loads(line), offset, end - offset))
        except ValueError:
            if end >= 0 and data[end + 1:].strip():
                raise LedgerError(f"{path}: line {len(rows) + 1} (byte {offset}) is not valid "
                                  "JSON and is not the last line; the ledger is corrupt. Move "
                                  "the segment aside or fix the line by hand") from None
            msg = (f"{path}: dropped a torn last line ({len(data) - offset} bytes at offset "
                   f"{offset}) left by a crash mid-write; {len(rows)} entries intact")
            if repair:
                with open(path, "r+b") as f:
                    f.truncate(offset)
                    os.fsync(f.fileno())
                msg += " (truncated)"
            log.warning(msg)
            messages.append(msg)
            break
        offset = end + 1
    return rows


class Ledger:
    """Append-only, fsynced label ledger of a run (one writer; `readonly=True` for readers).

    Memory holds only an index pair_id -> (segment, offset, length); entries are read back from
    disk on demand, so a ledger of millions of labels stays cheap to open and hold.
    """

    def __init__(self, run_dir: str | Path, *, readonly: bool = False,
                 segment_bytes: int = SEGMENT_BYTES):
        self.dir = ledger_dir(run_dir)
        self.readonly = readonly
        self.segment_bytes = segment_bytes
        self.messages: list[str] = []  # repairs done on open (shown by the CLI)
        self._index: dict[str, tuple[str, int, int]] = {}  # in append order
        if not readonly:
            self.dir.mkdir(parents=True, exist_ok=True)
        for path in ledger_files(self.dir.parent):
            for row, offset, length in _scan(Path(path), not readonly, self.messages):
                self._add(row, path, offset, length)

    # -- reading -------------------------------------------------------------------------------

    def _add(self, row: dict, path: str, offset: int, length: int) -> None:
        pid = row.get("pair_id")
        if pid is None:
            raise LedgerError(f"{path}: entry without a 'pair_id' at byte {offset}")
        if pid in self._index:
            raise LedgerError(f"{path}: pair_id {pid!r} is already in the ledger "
                              "(a label must be stored and counted exactly once)")
        self._index[pid] = (path, offset, length)

    def __len__(self) -> int:
        return len(self._index)

    def count(self) -> int:
        return len(self._index)

    def __contains__(self, pair_id: str) -> bool:
        return pair_id in self._index

    def get(self, pair_id: str) -> LedgerEntry | None:
        """The stored answer for pair_id, or None (reuse it instead of paying again)."""
        where = self._index.get(pair_id)
        if where is None:
            return None
        path, offset, length = where
        with open(path, "rb") as f:
            f.seek(offset)
            return LedgerEntry.from_dict(json.loads(f.read(length)))

    def entries(self) -> list[LedgerEntry]:
        return [LedgerEntry.from_dict(r) for r in self.records()]

    def records(self) -> list[dict]:
        """Entries as plain dicts, in append order."""
        data: dict[str, bytes] = {}
        out = []
        for path, offset, length in self._index.values():
            if path not in data:
                data[path] = Path(path).read_bytes()
            out.append(json.loads(data[path][offset:offset + length]))
        return out

    def to_pandas(self):
        import pandas as pd

        cols = [f.name for f in dataclasses.fields(LedgerEntry)]
        return pd.DataFrame(self.records(), columns=cols)

    def to_dataset(self):
        """A Hugging Face `datasets.Dataset` of the entries."""
        import datasets

        return datasets.Dataset.from_pandas(self.to_pandas(), preserve_index=False)

    # -- writing -------------------------------------------------------------------------------

    def _segment(self, incoming: int) -> Path:
        files = ledger_files(self.dir.parent)
        path = Path(files[-1]) if files else self.dir / "segment-00000.jsonl"
        if path.exists() and path.stat().st_size > 0 and \
                path.stat().st_size + incoming > self.segment_bytes:
            path = self.dir / f"segment-{int(path.stem.split('-')[1]) + 1:05d}.jsonl"
        return path

    def append(self, entries: Iterable[LedgerEntry | dict]) -> int:
        """Write entries as one batch; flushed and fsynced before returning. Returns the count.

        On a failed write the segment is truncated back to its previous end and LedgerError is
        raised; nothing of this batch is stored, every earlier entry is intact.
        """
        if self.readonly:
            raise LedgerError(f"{self.dir}: ledger opened read-only")
        rows = [dataclasses.asdict(e) if isinstance(e, LedgerEntry) else dict(e) for e in entries]
        if not rows:
            return 0
        seen = set()
        for r in rows:
            pid = r.get("pair_id")
            if pid is None:
                raise LedgerError(f"{self.dir}: entry without a 'pair_id': {str(r)[:200]}")
            if pid in self._index or pid in seen:
                raise LedgerError(f"{self.dir}: pair_id {pid!r} is already in the ledger "
                                  "(a label must be stored and counted exactly once)")
            seen.add(pid)
        lines = [(json.dumps(r, default=_jsonable, ensure_ascii=False) + "\n").encode()
                 for r in rows]
        data = b"".join(lines)
        path = self._segment(len(data))
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        start = os.fstat(fd).st_size
        try:
            view, done = memoryview(data), 0
            while done < len(data):
                done += _os_write(fd, view[done:])
            os.fsync(fd)
        except OSError as e:
            try:
                os.ftruncate(fd, start)
                os.fsync(fd)
                state = f"{len(self)} earlier entries are intact"
            except OSError as e2:
                state = (f"could not truncate back ({e2}); the torn tail is repaired when the "
                         f"ledger is next opened, {len(self)} earlier entries are intact")
            full = e.errno in (errno.ENOSPC, errno.EDQUOT)
            raise LedgerError(f"{path}: writing {len(rows)} ledger entries failed "
                              f"({os.strerror(e.errno) if e.errno else e}); {state}. "
                              + ("Free disk space" if full else "Fix the disk")
                              + " and resume the run") from e
        finally:
            os.close(fd)
        if start == 0:
            _fsync_dir(self.dir)  # a new segment's directory entry must be durable too
        offset = start
        for r, line in zip(rows, lines):
            self._add(r, str(path), offset, len(line) - 1)
            offset += len(line)
        return len(rows)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_ledger(run_dir: str | Path) -> list[LedgerEntry]:
    """All entries of a run's ledger, read-only (a torn last line is skipped, not repaired)."""
    return Ledger(run_dir, readonly=True).entries()

"""duel.ledger: durable append, lookup, torn-line repair, full disk, rollover, pandas/datasets."""

import errno
import json
from pathlib import Path

import numpy as np
import pytest

import duel.ledger as ledger_mod
from duel.ledger import (
    Ledger,
    LedgerEntry,
    LedgerError,
    entries_from_batch,
    ledger_files,
    read_ledger,
)
from duel.records import CandidateBatch, LabeledBatch, PairBatch, PromptBatch


def entry(i: int, **kw) -> LedgerEntry:
    base = {"pair_id": f"p{i}", "prompt_id": f"q{i % 3}", "tokens_a": [1, 2, i],
            "tokens_b": [3, i], "version": i // 2, "strategy": "ee_ts", "prob_a": 0.25 + i / 100,
            "label": i % 2, "step": i, "metadata": {"latency_s": 0.5, "retries": 0}}
    base.update(kw)
    return LedgerEntry(**base)


def test_append_read_lookup_and_count(tmp_path):
    led = Ledger(tmp_path)
    assert led.append([entry(0), entry(1)]) == 2
    e2 = entry(2, metadata={"latency_s": np.float32(0.25)}, prob_a=np.float64(0.9))
    assert led.append([e2]) == 1
    assert len(led) == led.count() == 3 and "p1" in led and "p9" not in led
    assert led.get("p1") == entry(1) and led.get("p9") is None
    # durable on return: a fresh reader sees exactly what was written
    back = read_ledger(tmp_path)
    assert [e.pair_id for e in back] == ["p0", "p1", "p2"]
    assert back[2].prob_a == 0.9 and back[2].metadata == {"latency_s": 0.25}
    assert back[0] == entry(0)
    again = Ledger(tmp_path)
    assert again.get("p2").tokens_b == [3, 2] and again.messages == []


def test_duplicate_pair_id_is_refused(tmp_path):
    led = Ledger(tmp_path)
    led.append([entry(0)])
    with pytest.raises(LedgerError, match="pair_id 'p0' is already in the ledger"):
        led.append([entry(1), entry(0, step=5)])
    with pytest.raises(LedgerError, match="pair_id 'p3' is already"):
        led.append([entry(3), entry(3)])
    assert len(Ledger(tmp_path)) == 1  # the refused batches wrote nothing


def test_torn_last_line_is_repaired_on_open(tmp_path):
    led = Ledger(tmp_path)
    led.append([entry(i) for i in range(3)])
    seg = ledger_files(tmp_path)[0]
    good = Path(seg).read_bytes()
    with open(seg, "ab") as f:
        f.write(entry(3).to_json().encode()[:25])  # crash mid-write: no newline, half a record
    ro = read_ledger(tmp_path)  # readers skip it without touching the file
    assert len(ro) == 3 and Path(seg).read_bytes() != good
    led = Ledger(tmp_path)
    assert len(led) == 3 and Path(seg).read_bytes() == good
    assert len(led.messages) == 1 and "torn last line (25 bytes" in led.messages[0]
    assert "3 entries intact" in led.messages[0] and seg in led.messages[0]
    led.append([entry(3)])
    assert [e.pair_id for e in read_ledger(tmp_path)] == ["p0", "p1", "p2", "p3"]


def test_garbage_in_the_middle_is_refused(tmp_path):
    Ledger(tmp_path).append([entry(0)])
    seg = ledger_files(tmp_path)[0]
    with open(seg, "ab") as f:
        f.write(b"{not json\n" + entry(1).to_json().encode() + b"\n")
    with pytest.raises(LedgerError, match=r"line 2 \(byte \d+\) is not valid JSON"):
        Ledger(tmp_path)


def test_full_disk_leaves_earlier_entries_intact(tmp_path, monkeypatch):
    led = Ledger(tmp_path)
    led.append([entry(i) for i in range(4)])
    seg = ledger_files(tmp_path)[0]
    before = Path(seg).read_bytes()
    calls = []

    def write_then_fail(fd, data):
        calls.append(len(data))
        if len(calls) == 1:  # the disk takes part of the batch, then fills up
            return ledger_mod.os.write(fd, bytes(data[:40]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ledger_mod, "_os_write", write_then_fail)
    with pytest.raises(LedgerError) as e:
        led.append([entry(4), entry(5)])
    msg = str(e.value)
    assert "No space left on device" in msg and "4 earlier entries are intact" in msg
    assert seg in msg and len(calls) == 2
    assert Path(seg).read_bytes() == before  # partial bytes truncated away
    assert len(led) == 4 and "p4" not in led
    monkeypatch.undo()
    reopened = Ledger(tmp_path)
    assert [e.pair_id for e in reopened.entries()] == ["p0", "p1", "p2", "p3"]
    assert reopened.messages == []
    reopened.append([entry(4)])  # space freed: the run goes on
    assert len(Ledger(tmp_path)) == 5


def test_segments_roll_over_by_size_and_batches_stay_whole(tmp_path):
    size = len(entry(0).to_json()) + 1
    led = Ledger(tmp_path, segment_bytes=3 * size)
    led.append([entry(0), entry(1)])
    led.append([entry(2), entry(3)])  # would exceed 3 entries: new segment
    led.append([entry(4)])
    led.append([entry(5), entry(6), entry(7)])
    files = ledger_files(tmp_path)
    assert [f.rsplit("/", 1)[1] for f in files] == [
        "segment-00000.jsonl", "segment-00001.jsonl", "segment-00002.jsonl"]
    counts = [len(Path(f).read_text().splitlines()) for f in files]
    assert counts == [2, 3, 3]
    assert [e.pair_id for e in Ledger(tmp_path).entries()] == [f"p{i}" for i in range(8)]


def test_pandas_and_datasets_read_it(tmp_path):
    import pandas as pd

    led = Ledger(tmp_path, segment_bytes=400)
    led.append([entry(i) for i in range(2)])
    led.append([entry(i) for i in range(2, 5)])
    assert len(ledger_files(tmp_path)) == 2
    df = pd.concat([pd.read_json(f, lines=True) for f in ledger_files(tmp_path)], ignore_index=True)
    assert df["pair_id"].tolist() == [f"p{i}" for i in range(5)]
    assert df["label"].tolist() == [0, 1, 0, 1, 0] and df["tokens_a"][4] == [1, 2, 4]
    mine = led.to_pandas()
    assert mine["prob_a"].tolist() == pytest.approx([0.25, 0.26, 0.27, 0.28, 0.29])
    ds = led.to_dataset()
    assert ds.num_rows == 5 and ds[3]["tokens_b"] == [3, 3] and ds[3]["metadata"]["retries"] == 0


def test_entries_from_batch_keeps_only_paid_queries():
    P, M, N = 3, 4, 5
    tokens = np.arange(P * M * N, dtype=np.int32).reshape(P, M, N)
    mask = np.ones((P, M, N), np.int32)
    mask[..., 3:] = 0
    prompts = PromptBatch(["a", "b", "c"], ["A?", "B?", "C?"], np.zeros((P, 2), np.int32),
                          np.ones((P, 2), np.int32), step=4)
    cb = CandidateBatch(prompts, tokens, mask, np.zeros((P, M, N), np.float32),
                        np.zeros((P, M, N), np.float32), np.zeros((P, M, 2), np.float32),
                        [[f"r{p}{m}" for m in range(M)] for p in range(P)], version=7)
    pb = PairBatch(cb, np.array([[0, 1], [2, 3], [1, 0]], np.int32), np.zeros(P, bool),
                   np.array([False, True, False]), "bai_ts", pair_ids=["x0", "x1", "x2"])
    lb = LabeledBatch(pb, np.array([0.9, 0.5, 0.2], np.float32), np.array([1, 0, 0], np.int8),
                      [{"retries": i} for i in range(P)],
                      from_ledger=np.array([False, False, True]))
    out = entries_from_batch(lb, step=4)
    assert lb.queries == 1 and len(out) == 1
    e = out[0]
    assert (e.pair_id, e.prompt_id, e.version, e.strategy, e.label, e.step) == (
        "x0", "a", 7, "bai_ts", 1, 4)
    assert e.tokens_a == [0, 1, 2] and e.tokens_b == [5, 6, 7] and e.prob_a == pytest.approx(0.9)
    assert (e.prompt, e.response_a, e.response_b) == ("A?", "r00", "r01")
    assert e.metadata == {"retries": 0}
    json.loads(e.to_json())

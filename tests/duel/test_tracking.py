"""Weights & Biases (duel.tracking), offline and without network: the W&B run's history holds
the train and eval rows of metrics.jsonl, its config is the run config, a resume continues the
same W&B run id; asking for W&B without the package is an error before anything starts."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from duel.config import from_dict
from duel.metrics import MetricsWriter, read_metrics
from duel.tracking import RECORD, TrackingError, WandbMirror, WandbSpec, check_installed

wandb = pytest.importorskip("wandb")
from wandb.proto import wandb_internal_pb2 as pb  # noqa: E402

BLOCK = 32768  # the .wandb file: a LevelDB-style log of protobuf Records in 32 KiB blocks


def wandb_records(path: Path) -> list:
    """The Records of one offline run file (header ':W&B' + magic + version, then chunks with a
    7-byte header: crc32, length, type FULL/FIRST/MIDDLE/LAST)."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, buf, out = 7, b"", []
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 1:
            out.append(chunk)
        elif kind == 2:
            buf = chunk
        elif kind == 3:
            buf += chunk
        elif kind == 4:
            out.append(buf + chunk)
    return [pb.Record.FromString(c) for c in out]


def history(run_dir: Path) -> tuple[list[dict], list[dict], set[str]]:
    """(history rows, config items, run ids) of every offline W&B run under RUN_DIR/wandb."""
    rows, config, ids = [], [], set()
    for f in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb")):
        for r in wandb_records(f):
            which = r.WhichOneof("record_type")
            if which == "history":
                rows.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in r.history.item})
            elif which == "run":
                ids.add(r.run.run_id)
                config += [{i.key: json.loads(i.value_json)} for i in r.run.config.update]
    return rows, config, ids


def settled_history(run_dir: Path, rows: int, wait_s: float = 120.0) -> tuple[list[dict], list[dict], set[str]]:
    """history(RUN_DIR) once it holds ROWS history rows. W&B's service process writes the offline
    file after `finish()` returns; on a loaded machine the last rows land a little later. The wait
    only bounds how long to look: an absent row still fails the test's assertions."""
    deadline = time.monotonic() + wait_s
    while True:
        got = history(run_dir)
        if len(got[0]) >= rows or time.monotonic() > deadline:
            return got
        time.sleep(0.5)


def as_wandb(row: dict) -> dict:
    return {"step": row["step"], **{f"{row['kind']}/{k}": v for k, v in row.items()
                                    if k not in ("kind", "step") and isinstance(v, (int, float))
                                    and not isinstance(v, bool) and math.isfinite(v)}}


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)


def test_offline_history_equals_metrics_and_a_resume_keeps_the_run_id(tmp_path):
    cfg = from_dict({"task": "arithmetic", "logging": {"wandb": {"project": "duel-test", "mode": "offline"}}})
    spec = WandbSpec.from_config(cfg)
    assert spec == WandbSpec(project="duel-test", mode="offline")
    assert WandbSpec.from_config(from_dict({})) is None  # no project: W&B off
    config = {"seed": 0, "task": "arithmetic", "loss": {"beta": 0.1}}
    with MetricsWriter(tmp_path, tensorboard=False, mirror=WandbMirror.open(tmp_path, spec, config=config)) as mw:
        first_id = mw.mirror.id
        for step in (1, 2, 3):
            mw.log("train", step, queries=4 * step, loss=0.7 - 0.1 * step, stopped=False, example="x")
        mw.log("eval", 3, queries=12, win_rate=0.625, n=8, nan_metric=float("nan"))
    assert json.loads((tmp_path / RECORD).read_text())["id"] == first_id
    # a resume from step 2: metrics.jsonl drops step 3, the same W&B run gets the redone rows
    mirror = WandbMirror.open(tmp_path, spec, config=config)
    assert mirror.id == first_id
    with MetricsWriter(tmp_path, tensorboard=False, resume_step=2, mirror=mirror) as mw:
        mw.log("train", 3, queries=12, loss=0.35)
        mw.log("eval", 3, queries=12, win_rate=0.75, n=8)
    rows, cfg_items, ids = settled_history(tmp_path, rows=6)  # 4 rows, then the resume's 2
    assert ids == {first_id}
    assert len(list(tmp_path.glob("wandb/offline-run-*"))) == 2  # one W&B directory per process
    assert {"seed": 0} in cfg_items and {"loss": {"beta": 0.1}} in cfg_items
    got = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    before = [as_wandb(r) for r in [
        {"kind": "train", "step": s, "queries": 4 * s, "loss": 0.7 - 0.1 * s} for s in (1, 2, 3)]] + [
        {"step": 3, "eval/queries": 12, "eval/win_rate": 0.625, "eval/n": 8}]
    # every metrics.jsonl row of the finished run is in the history, in order, after the
    # stopped process's rows (steps it redid are in W&B twice: metrics.jsonl keeps the last)
    assert got == before + [as_wandb(r) for r in read_metrics(tmp_path) if r["step"] == 3]
    assert [as_wandb(r) for r in read_metrics(tmp_path)] == got[:2] + got[-2:]


def test_asking_for_wandb_without_the_package_fails_before_anything_starts(monkeypatch, tmp_path):
    import importlib.util

    from launch import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    with pytest.raises(TrackingError, match=r"pip install -e '.\[wandb\]'"):
        check_installed()
    cfg = from_dict({"task": "arithmetic", "logging": {"wandb": {"project": "p"}}})
    from duel.config import ConfigError

    with pytest.raises(ConfigError, match=r"^exp.yaml: key 'logging.wandb.project' asks for Weights & Biases, "
                                          r"and the wandb package is not installed"):
        cli._check_inputs(cfg, "exp.yaml")
    assert list(tmp_path.iterdir()) == []

"""duel.metrics: JSONL lines (numpy/jax scalars), TensorBoard events, resume truncation, display."""

import io
import json

import jax.numpy as jnp
import numpy as np
import pytest
from rich.console import Console

from duel.metrics import MetricsWriter, Progress, metrics_path, read_metrics


def test_jsonl_lines_and_reader(tmp_path):
    with MetricsWriter(tmp_path, tensorboard=False) as mw:
        row = mw.log("train", 1, queries=np.int64(8), loss=jnp.float32(0.5),
                     synthetic=0, diag={"var": np.float32(0.25)}, hist=np.arange(3))
        # flushed per line: readable while the writer is open
        assert read_metrics(tmp_path) == [row]
        mw.log("eval", 1, queries=8, win_rate=np.float64(0.625), n=16)
        mw.log("train", 2, queries=16, loss=0.25, ok=True)
    lines = metrics_path(tmp_path).read_text().splitlines()
    assert json.loads(lines[0]) == {"kind": "train", "step": 1, "queries": 8, "loss": 0.5,
                                    "synthetic": 0, "diag": {"var": 0.25}, "hist": [0, 1, 2]}
    assert [r["step"] for r in read_metrics(tmp_path, kind="train")] == [1, 2]
    assert read_metrics(tmp_path, kind="eval") == [
        {"kind": "eval", "step": 1, "queries": 8, "win_rate": 0.625, "n": 16}]
    with pytest.raises(ValueError, match="needs 'kind' and 'step'"):
        MetricsWriter(tmp_path, tensorboard=False).write({"step": 3})


def test_torn_last_line_is_skipped_and_resume_drops_redone_steps(tmp_path):
    with MetricsWriter(tmp_path, tensorboard=False) as mw:
        for s in range(1, 6):
            mw.log("train", s, queries=8 * s)
        mw.log("eval", 4, win_rate=0.5)
    with open(metrics_path(tmp_path), "a") as f:
        f.write('{"kind": "train", "st')  # crash mid-line
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3, 4, 5, 4]
    mw = MetricsWriter(tmp_path, tensorboard=False, resume_step=3)  # checkpoint was at step 3
    assert mw.dropped == 3
    mw.log("train", 4, queries=32)
    mw.close()
    assert [(r["kind"], r["step"]) for r in read_metrics(tmp_path)] == [
        ("train", 1), ("train", 2), ("train", 3), ("train", 4)]


def test_tensorboard_events_hold_the_scalars(tmp_path):
    with MetricsWriter(tmp_path, tensorboard=True) as mw:
        mw.log("train", 1, loss=0.75, queries=8, strategy="ee_ts", flag=True)
        mw.log("train", 2, loss=0.5, queries=16, nan=float("nan"))
        mw.log("eval", 2, win_rate=0.6)
    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert len(events) == 1 and events[0].stat().st_size > 0
    scalars = read_scalars(events[0])
    tags = sorted({tag for tag, _, _ in scalars})
    assert tags == ["eval/win_rate", "train/loss", "train/queries"]
    assert [(s, v) for tag, s, v in scalars if tag == "train/loss"] == [(1, 0.75), (2, 0.5)]
    assert [(s, v) for tag, s, v in scalars if tag == "eval/win_rate"] == [(2, pytest.approx(0.6))]


def read_scalars(path):
    """(tag, step, value) from a TFRecord event file, parsed with tensorboardX's own protos."""
    import struct

    from tensorboardX.proto.event_pb2 import Event

    out, data, i = [], path.read_bytes(), 0
    while i < len(data):
        (n,) = struct.unpack("<Q", data[i:i + 8])
        event = Event.FromString(data[i + 12:i + 12 + n])
        i += 12 + n + 4
        for v in event.summary.value:
            out.append((v.tag, event.step, v.simple_value))
    return out


def test_progress_plain_lines_when_not_a_tty():
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with Progress(100, budget=1000, console=console) as p:
        assert not p.rich
        p.update(12, 96, 4, win_rate=0.61,
                 times={"generate": 1.2, "select": 0.01, "oracle": 0.3, "learn": 0.8,
                        "publish": 0.05})
        p.update(13, 104, 4)
        p.update(14, 112, 4, win_rate=0.6, win_rate_step=10)
        p.message("checkpoint saved at step 13")
    lines = out.getvalue().splitlines()
    assert lines == [
        ("step 12/100  queries 96/1000  synthetic 4  last eval (step 12) win rate 0.610  time "
         "generate 1.20s select 10ms oracle 300ms learn 800ms publish 50ms"),
        "step 13/100  queries 104/1000  synthetic 4  last eval (step 12) win rate 0.610",
        "step 14/100  queries 112/1000  synthetic 4  last eval (step 10) win rate 0.600",
        "checkpoint saved at step 13"]


def test_progress_plain_every_n_steps_and_the_last():
    out = io.StringIO()
    with Progress(7, console=Console(file=out, force_terminal=False), plain_every=3) as p:
        for step in range(1, 8):
            p.update(step, 2 * step)
    assert [line.split("  ")[0] for line in out.getvalue().splitlines()] == [
        "step 3/7", "step 6/7", "step 7/7"]
    assert out.getvalue().splitlines()[-1] == "step 7/7  queries 14  synthetic 0"


def test_progress_rich_display_on_a_terminal():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    with Progress(50, budget=None, console=console) as p:
        assert p.rich
        p.update(5, 40, 2, win_rate=0.5, times={"generate": 0.5, "learn": 0.5})
    text = out.getvalue()
    assert "5/50" in text and "40 (no budget)" in text and "0.500 (at step 5)" in text
    assert "generate 500ms (50%)" in text and "learn 500ms (50%)" in text


def test_progress_disabled_prints_nothing():
    out = io.StringIO()
    with Progress(10, 10, enabled=False, console=Console(file=out, force_terminal=True)) as p:
        p.update(1, 1)
        p.message("x")
    assert out.getvalue() == ""

"""bench/gpu_profile.py: the trace reading it does on a GPU (synthetic traces), and its --check run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench import gpu_profile  # noqa: E402


def _meta(pid, name, tid=None):
    e = {"ph": "M", "pid": pid, "name": "thread_name" if tid is not None else "process_name", "args": {"name": name}}
    return {**e, "tid": tid} if tid is not None else e


def _x(pid, tid, name, ts, dur):
    return {"ph": "X", "pid": pid, "tid": tid, "name": name, "ts": ts, "dur": dur}


GPU_TRACE = {"traceEvents": [
    _meta(1, "/host:CPU"), _meta(1, "python", tid=10),
    _meta(2, "/device:GPU:0"), _meta(2, "Stream #13(Kernels)", tid=13), _meta(2, "Stream #14(MemcpyD2H)", tid=14),
    _meta(2, "XLA Ops", tid=99),
    _x(1, 10, "generate", 0, 1000),
    _x(2, 13, "gemm_fusion", 100, 200), _x(2, 13, "gemm_fusion", 400, 200), _x(2, 13, "loop_add_fusion", 650, 50),
    _x(2, 14, "MemcpyD2H", 450, 300),  # overlaps the second gemm: busy counts it once
    _x(2, 99, "fusion.1", 100, 600),  # an op-level line over the same kernels: must not be counted
]}


def test_device_events_keep_the_kernel_streams_only():
    events, kind, per_thread = gpu_profile.device_events(GPU_TRACE)
    assert kind == "device streams"
    assert sorted(e["name"] for e in events) == ["MemcpyD2H", "gemm_fusion", "gemm_fusion", "loop_add_fusion"]
    assert per_thread["/device:GPU:0 / XLA Ops"] == 1 and per_thread["/host:CPU / python"] == 1
    # union of [100,300) [400,600) [450,750) [650,700) = 200 + 350
    assert gpu_profile.busy_us(events) == pytest.approx(550.0)
    rows = gpu_profile.kernel_table(events, wall_us=1000.0, top=2)
    assert [r["name"] for r in rows] == ["gemm_fusion", "MemcpyD2H"]
    assert rows[0]["total_ms"] == pytest.approx(0.4) and rows[0]["count"] == 2
    assert rows[0]["mean_us"] == pytest.approx(200.0) and rows[0]["share_of_wall"] == pytest.approx(0.4)


def test_device_events_without_stream_threads_take_the_whole_device():
    trace = [_meta(2, "/device:GPU:0"), _meta(2, "kernels", tid=5), _x(2, 5, "k", 0, 10), _x(2, 6, "k", 20, 10)]
    events, kind, _ = gpu_profile.device_events(trace)
    assert kind == "device" and len(events) == 2 and gpu_profile.busy_us(events) == pytest.approx(20.0)


def test_check_run_writes_the_profile(tmp_path, monkeypatch):
    monkeypatch.setenv("DUEL_BENCH_RESULTS", str(tmp_path))
    assert gpu_profile.main(["--check", "--top", "5"]) == 0
    d = json.loads((tmp_path / "gpu_profile.json").read_text())
    assert d["check"] and len(d["runs"]) == 1
    r = d["runs"][0]
    assert (r["model"], r["batch"], r["new_tokens"]) == ("qwen2.5-0.5b", 4, 8)
    assert r["events_from"] == "cpu threads" and r["events"] > 0 and 0 < r["device_busy_fraction"]
    assert len(r["top"]) == 5 and [x["total_ms"] for x in r["top"]] == sorted((x["total_ms"] for x in r["top"]), reverse=True)
    assert d["copy_gbs"] > 0 and d["transfer"]["d2h_gbs"] > 0 and d["transfer"]["h2d_gbs"] > 0
    pub = d["transfer"]["publish"]
    # CPU has pinned host memory too: every path of the publish's pieces runs and is timed
    paths = ("shipped", "program", "pageable", "pinned_put", "pinned_numpy", "program_into_pinned")
    assert all(isinstance(pub[k], float) and pub[k] > 0 for k in paths), pub
    assert pub["bytes"] == 16 << 20 and pub["leaves"] == 16 and "pinned_error" not in pub


def test_program_into_pinned_packs_what_the_shipped_pack_packs():
    """The candidate publish path (the pack program writing into pinned host memory) gives the
    shipped pack's bytes exactly."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from duel.transport import _pack_fn, layout, pack

    tree = {"a": jnp.linspace(-3, 3, 1000, dtype=jnp.float32).reshape(10, 100),
            "b": jnp.arange(7, dtype=jnp.int32), "c": jnp.full((33,), 1 / 3, jnp.float32)}
    shipped, spec = pack(tree, jnp.bfloat16, bucket_bytes=1024, on_device=True)
    pinned = jax.sharding.SingleDeviceSharding(jax.devices()[0], memory_kind="pinned_host")
    into = _pack_fn(layout(tree, jnp.bfloat16, 1024), pinned)(jax.tree.leaves(tree))
    assert all(b.sharding.memory_kind == "pinned_host" for b in into)
    got = [np.asarray(b).view(np.uint8) for b in into]
    assert [g.tobytes() for g in got] == [s.tobytes() for s in shipped] and len(got) == len(spec.starts) > 1

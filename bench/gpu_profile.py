"""Where a GPU decode step's time goes, and how fast weights leave the device: for the next GPU call.

The 2026-12-04 H200 run (README "Measured on an H200") left two questions the cost model cannot
answer: the Qwen2.5-0.5B `generate` call takes 2.1-2.6x its predicted time (and CUDA graphs did
not move it), and the weight publish runs at ~2 GB/s. This script answers both in one process:

1. **Kernels of one `generate` call** (128-token prompts + 128 new, bf16, as bench/sampler.py):
   compiled and run once, then run once more under `jax.profiler.trace` with a Perfetto trace;
   the trace's device events (kernels, copies) are summed by name: total time, count per call,
   share of the call's wall time, and the device's busy time (the union of its events) against
   the wall time, i.e. how much of the call the device sat idle between kernels.
2. **Device -> host bandwidth**: `jax.device_get` of a 2 GB bf16 array (the Pythia-1B policy's
   size), the host -> device `jax.device_put` of the same bytes, and the measured device copy
   rate (`bench.common.copy_bandwidth_gbs`, 20 passes): the ceiling the publish path
   (`duel.transport.pack`) can reach on that machine. Then the publish's own pieces on a tree
   that packs to the same 2 GB (`publish_paths`): the shipped pack, its device program alone, its
   pageable device -> host copy, and the same buckets through pinned host memory (a `device_put`,
   or the program writing into it): is the 2 GB/s the link, the pageable copy or the program?

    python3 bench/gpu_profile.py                       # GPU: Qwen 64 + 256, Pythia 256; ~2 min
    python3 bench/gpu_profile.py --runs qwen2.5-0.5b:64
    .venv/bin/python bench/gpu_profile.py --check       # tiny shapes on CPU (the tests): the path only

Writes `gpu_profile.json` (results dir; `DUEL_BENCH_RESULTS` in bench/gpu.sh) and prints one table
per call, then the transfer rates. On a CPU the "device" events are XLA's CPU ops (check only).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax
import jax.numpy as jnp
import numpy as np

from bench.common import copy_bandwidth_gbs, print_table, timeit, write_result
from bench.sampler import CHECK, FULL
from duel.models import ModelConfig, build_model
from duel.sampling import SamplingParams, generate

DEFAULT_RUNS = ("qwen2.5-0.5b:64", "qwen2.5-0.5b:256", "pythia-1b:256")


def device_events(trace: dict | list) -> tuple[list[dict], str, dict]:
    """The complete ('X') events of the accelerator's kernel streams (threads named 'Stream...'
    of a '/device:' process; every thread of it if none is so named: 'XLA Ops' and 'XLA Modules'
    lines would count a kernel twice), else of XLA's CPU threads; and events per thread name."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    procs = {e["pid"]: e["args"].get("name", "") for e in events
             if e.get("ph") == "M" and e.get("name") == "process_name"}
    threads = {(e["pid"], e.get("tid")): e["args"].get("name", "") for e in events
               if e.get("ph") == "M" and e.get("name") == "thread_name"}
    complete = [e for e in events if e.get("ph") == "X"]
    per_thread: dict[str, int] = {}
    for e in complete:
        label = f"{procs.get(e['pid'], e['pid'])} / {threads.get((e['pid'], e.get('tid')), e.get('tid'))}"
        per_thread[label] = per_thread.get(label, 0) + 1
    gpu = {pid for pid, name in procs.items() if "/device:" in name and "CPU" not in name}
    if gpu:
        streams = {k for k, name in threads.items() if k[0] in gpu and name.startswith("Stream")}
        keep = [e for e in complete if (e["pid"], e.get("tid")) in streams] if streams else \
            [e for e in complete if e["pid"] in gpu]
        return keep, "device streams" if streams else "device", per_thread
    xla = {k for k, name in threads.items() if "XLA" in name or "Eigen" in name}
    return [e for e in complete if (e["pid"], e.get("tid")) in xla], "cpu threads", per_thread


def busy_us(events: list[dict]) -> float:
    """Length of the union of the events' [ts, ts + dur) intervals, in microseconds."""
    spans = sorted((float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0.0))) for e in events)
    total, end = 0.0, -np.inf
    for a, b in spans:
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def kernel_table(events: list[dict], wall_us: float, top: int) -> list[dict]:
    by: dict[str, list[float]] = {}
    for e in events:
        by.setdefault(e["name"], []).append(float(e.get("dur", 0.0)))
    rows = [{"name": n[:70], "total_ms": sum(d) / 1e3, "count": len(d), "mean_us": float(np.mean(d)),
             "share_of_wall": sum(d) / wall_us} for n, d in by.items()]
    rows.sort(key=lambda r: -r["total_ms"])
    return rows[:top]


def profile_generate(shapes: dict, name: str, batch: int, prompt_len: int, new_tokens: int, top: int) -> dict:
    cfg = ModelConfig.from_hf(shapes[name])
    model = build_model(cfg, seed=0, dtype=jnp.bfloat16)
    ids = np.random.default_rng(0).integers(2, cfg.vocab_size, (batch, prompt_len)).astype(np.int32)
    prompts = (ids, np.ones_like(ids))
    params = SamplingParams(temperature=1.0, max_new_tokens=new_tokens, stop_token_ids=())
    key = jax.random.key(0)

    def call():
        out = generate(model, prompts, key, params, 1)
        jax.block_until_ready(out.tokens)
        return out

    call()  # compile
    untraced = timeit(call, warmup=1, repeat=3)
    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d, create_perfetto_trace=True):
            t0 = time.perf_counter()
            call()
            wall = time.perf_counter() - t0
        path = next(Path(d).rglob("perfetto_trace.json.gz"))
        trace = json.loads(gzip.open(path).read())
    events, kind, per_thread = device_events(trace)
    busy = busy_us(events)
    rows = kernel_table(events, wall * 1e6, top)
    return {"model": name, "batch": batch, "prompt_len": prompt_len, "new_tokens": new_tokens,
            "untraced_s": untraced, "traced_wall_s": wall, "events_from": kind, "events": len(events),
            "distinct": len({e["name"] for e in events}), "device_busy_s": busy / 1e6,
            "device_busy_fraction": busy / (wall * 1e6), "top": rows, "events_per_thread": per_thread}


def timeit_fresh(make, use, *, warmup: int = 1, repeat: int = 3) -> float:
    """Median wall seconds of use(make()), make() run and waited for outside the clock: each
    repetition copies a fresh array (a jax.Array keeps its NumPy value after the first device ->
    host copy, so timing the same array twice times a cache)."""
    times = []
    for i in range(warmup + repeat):
        x = jax.block_until_ready(make())
        t0 = time.perf_counter()
        use(x)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return float(np.median(times))


def transfers(nbytes: int) -> dict:
    x = jnp.ones((nbytes // 2,), jnp.bfloat16)
    x.block_until_ready()
    d2h = timeit_fresh(lambda: x + jnp.bfloat16(0), lambda y: np.asarray(jax.device_get(y)))
    host = np.ones((nbytes // 2,), dtype=jnp.bfloat16)
    h2d = timeit(lambda: jax.device_put(host).block_until_ready(), warmup=1, repeat=3)
    return {"bytes": nbytes, "d2h_gbs": nbytes / d2h / 1e9, "h2d_gbs": nbytes / h2d / 1e9,
            "publish": publish_paths(nbytes)}


def publish_paths(nbytes: int, leaves: int = 16) -> dict:
    """Where `duel.transport.pack`'s time goes on this device, and whether pinned host memory
    helps: a float32 tree that packs to `nbytes` of bf16 (`leaves` arrays, as a policy's layers),
    timed (median of 3 after 1 warm-up, each on freshly made arrays: `timeit_fresh`) along

    - `shipped`: `pack(..., on_device=True)`, the learner's path (jitted cast + concatenate into
      64 MB buckets, every device -> host copy started, then NumPy arrays);
    - `program`: that jitted program alone, its buckets left on the device;
    - `pageable`: those device buckets to NumPy (`copy_to_host_async` on all, then `np.asarray`):
      the shipped path's copy;
    - `pinned_put`: the device buckets `device_put` into the device's pinned host memory;
    - `pinned_numpy`: those pinned buckets to NumPy (`np.asarray`; `pinned_numpy_is_view` says
      whether it copied);
    - `program_into_pinned`: the jitted program writing its buckets straight into pinned host
      memory (`out_shardings` with memory kind `pinned_host`), then to NumPy: the candidate path.

    -> {path: GB/s of the packed bytes} (a path the backend refuses: {path: "error: ..."})."""
    from duel.transport import DEFAULT_BUCKET_BYTES, _pack_fn, layout, pack

    n = nbytes // 2 // leaves  # bf16 elements per leaf
    tree = {f"w{i}": jnp.full((n,), 0.5 + i, jnp.float32) for i in range(leaves)}
    jax.block_until_ready(tree)
    spec = layout(tree, jnp.bfloat16, DEFAULT_BUCKET_BYTES)
    flat = jax.tree.leaves(tree)
    dev = flat[0].devices().pop()
    pinned = jax.sharding.SingleDeviceSharding(dev, memory_kind="pinned_host")
    program = _pack_fn(spec, None)
    fresh = lambda: program(flat)  # new device buckets (each repetition copies its own)
    to_pinned = lambda arrays: [jax.device_put(b, pinned) for b in arrays]

    def to_numpy(arrays):
        for b in arrays:
            b.copy_to_host_async()
        return [np.asarray(b) for b in arrays]

    paths = {  # name -> (make, use): use(make()) is timed, make() is not
        "shipped": (lambda: None, lambda _: pack(tree, jnp.bfloat16, on_device=True)),
        "program": (lambda: None, lambda _: jax.block_until_ready(program(flat))),
        "pageable": (fresh, to_numpy),
        "pinned_put": (fresh, lambda b: jax.block_until_ready(to_pinned(b))),
        "pinned_numpy": (lambda: to_pinned(fresh()), lambda b: [np.asarray(x) for x in b]),
        "program_into_pinned": (lambda: None, lambda _: [np.asarray(b) for b in jax.block_until_ready(
            _pack_fn(spec, pinned)(flat))]),
    }
    out: dict = {"bytes": spec.total_bytes, "buckets": len(spec.starts), "leaves": leaves}
    try:
        held = jax.block_until_ready(to_pinned(fresh()))
        out["pinned_numpy_is_view"] = not np.asarray(held[0]).flags.owndata
        del held
    except Exception as e:  # a backend without pinned host memory: the pinned paths say so too
        out["pinned_error"] = f"error: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    for name, (make, use) in paths.items():
        try:
            out[name] = spec.total_bytes / timeit_fresh(make, use) / 1e9
        except Exception as e:
            out[name] = f"error: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", nargs="+", default=None, help="MODEL:BATCH ... (default: %s)" % " ".join(DEFAULT_RUNS))
    ap.add_argument("--top", type=int, default=15, help="kernels shown per call")
    ap.add_argument("--check", action="store_true", help="tiny shapes (CPU, tests): the path only")
    args = ap.parse_args(argv)
    shapes = CHECK if args.check else FULL
    runs = args.runs or (["qwen2.5-0.5b:4"] if args.check else list(DEFAULT_RUNS))
    prompt_len, new_tokens = (8, 8) if args.check else (128, 128)
    gpu = jax.default_backend() == "gpu"
    out = {"runs": [], "note": "profiled on " + jax.default_backend()}
    for spec in runs:
        name, batch = spec.split(":")
        r = profile_generate(shapes, name, int(batch), prompt_len, new_tokens, args.top)
        out["runs"].append(r)
        write_result("gpu_profile", out, check=args.check)
        print_table(r["top"], title=f"{name} batch {batch}: {r['traced_wall_s'] * 1e3:.1f} ms traced "
                    f"({r['untraced_s'] * 1e3:.1f} untraced), {r['events']} {r['events_from']} events, "
                    f"{r['distinct']} distinct, device busy {r['device_busy_fraction']:.0%}")
    out["copy_gbs"] = copy_bandwidth_gbs(1 << 30, passes=20) if gpu else copy_bandwidth_gbs(16 << 20)
    out["transfer"] = transfers((2 << 30) if gpu else (16 << 20))
    path = write_result("gpu_profile", out, check=args.check)
    print(f"device copy {out['copy_gbs']:.0f} GB/s (read + write); device -> host "
          f"{out['transfer']['d2h_gbs']:.2f} GB/s, host -> device {out['transfer']['h2d_gbs']:.2f} GB/s "
          f"({out['transfer']['bytes'] / 1e9:.2f} GB bf16)")
    pub = out["transfer"]["publish"]
    print_table([{"path": k, "GB/s": v} for k, v in pub.items()
                 if k in ("shipped", "program", "pageable", "pinned_put", "pinned_numpy", "program_into_pinned")],
                title=f"publish pack, {pub['bytes'] / 1e9:.2f} GB bf16 in {pub['buckets']} buckets "
                      f"(pinned -> NumPy a view: {pub.get('pinned_numpy_is_view')})")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

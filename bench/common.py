"""Shared helpers for benchmarks: machine description, hardware limits, table + JSON output.

Benchmarks are scripts, not tests. Each prints a table last and writes JSON to bench/results/.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
# where write_result puts JSON: bench/results/, or $DUEL_BENCH_RESULTS (bench/gpu.sh sets it to the
# device run's $OUT); a --check run never writes to bench/results/ (its numbers mean nothing)
CHECK_RESULTS = Path(tempfile.gettempdir()) / "duel-bench-check"


def results_dir(check: bool = False) -> Path:
    """Directory for result JSON: $DUEL_BENCH_RESULTS if set, else bench/results/ (a temp dir
    for --check runs)."""
    env = os.environ.get("DUEL_BENCH_RESULTS")
    if env:
        return Path(env)
    return CHECK_RESULTS if check else RESULTS


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def machine() -> dict:
    """Describe the machine a number was measured on."""
    import jax

    dev = jax.devices()[0]
    out = {
        "host": platform.node(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "flax": _version("flax"),
        "backend": jax.default_backend(),
        "device": getattr(dev, "device_kind", str(dev)),
        "device_count": jax.device_count(),
    }
    stats = dev.memory_stats() if hasattr(dev, "memory_stats") else None
    if stats and stats.get("bytes_limit"):
        out["device_memory_gib"] = stats["bytes_limit"] / 2**30
    return out


def timeit(fn, *, warmup: int = 1, repeat: int = 5) -> float:
    """Median wall seconds of fn() (fn must block until its result is ready)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def copy_bandwidth_gbs(nbytes: int = 256 << 20, passes: int = 1) -> float:
    """Measured device memory bandwidth in GB/s: bytes read + written by `passes` jitted copies.

    On a GPU give it many passes (the sampler: 20 x 1 GiB): one 1 GiB pass is ~0.5 ms, and a call
    that short measured 2.0-3.3 TB/s on an H200 that copies at 4.3 (2026-12-04: call overhead and
    clocks still low after an idle GPU); the passes run inside one call (a `fori_loop`).
    """
    import jax
    import jax.numpy as jnp

    x = jnp.ones((nbytes // 4,), jnp.float32)
    f = jax.jit(lambda a: jax.lax.fori_loop(0, passes, lambda i, v: v + 1.0, a))
    t = timeit(lambda: f(x).block_until_ready(), warmup=2, repeat=5)
    return 2 * nbytes * passes / t / 1e9


def matmul_tflops(n: int = 2048, dtype: str = "bfloat16") -> float:
    """Measured dense matmul rate in TFLOP/s for an n x n x n product in `dtype`."""
    import jax
    import jax.numpy as jnp

    a = jnp.ones((n, n), dtype)
    b = jnp.ones((n, n), dtype)
    f = jax.jit(lambda x, y: x @ y)
    t = timeit(lambda: f(a, b).block_until_ready(), warmup=2, repeat=5)
    return 2 * n**3 / t / 1e12


def print_table(rows: list[dict], title: str = "") -> None:
    """Print rows as a rich table (the last thing a benchmark prints)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    cols = list(rows[0]) if rows else []
    for c in cols:
        table.add_column(c)
    for r in rows:
        table.add_row(*[f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols])
    Console(width=200).print(table)


def write_result(name: str, payload: dict, *, check: bool = False) -> Path:
    """Write NAME.json into results_dir(check) with the machine named (check runs say so)."""
    out = results_dir(check)
    out.mkdir(parents=True, exist_ok=True)
    head = {"benchmark": name, "machine": machine(), "time": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    if check:
        head["check"] = "check mode: the GPU code path on scaled-down shapes; the numbers mean nothing"
    payload = {**head, **payload}
    path = out / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    return path


def use_cudnn_attention() -> bool:
    """What-if for this process only (not the product): `duel.models.layers.attention` -- every
    attention of the models: training, prefill, the decode step over its cache -- becomes cuDNN's
    fused flash attention (`jax.nn.dot_product_attention(..., implementation="cudnn")`), same
    inputs and masking (the bool mask [B, T, S] broadcast over heads; GQA native), wherever cuDNN
    takes the head size (<= 128 and a multiple of 8: Qwen2.5-0.5B's 64, not Pythia-1B's 256; others
    keep XLA's). Call before anything is traced. Needs cuDNN: on a GPU (the JAX CUDA wheels bring
    it) or for a deviceless compile with the nvidia-cudnn wheel installed. The cost model predicts
    it (bench/results/cost_model_cudnn_attention.json); never run on a GPU yet. Returns False, and
    patches nothing, where there is no CUDA backend or plugin to lower it for."""
    import math

    import jax

    from duel.models import layers

    try:
        jax.devices("cuda")
    except RuntimeError:
        from bench.memory import _plugin_version

        if _plugin_version() is None:  # no GPU and no plugin for a deviceless compile
            return False
    xla_attention = layers.attention

    def cudnn_attention(q, k, v, mask, scale=None):
        if q.shape[-1] > 128 or q.shape[-1] % 8:
            return xla_attention(q, k, v, mask, scale)
        s = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
        return jax.nn.dot_product_attention(q, k, v, mask=mask[:, None], scale=s, implementation="cudnn")

    cudnn_attention.xla = xla_attention
    layers.attention = cudnn_attention
    return True


def attention_parity(batch: int = 16, slots: int = 159, heads: int = 14, kv_heads: int = 2, dim: int = 64,
                     seed: int = 0) -> dict:
    """Max |difference| of `duel.models.layers.attention` as patched (cuDNN, or XLA's where not) and
    of XLA's own against the float32 plain reference (`attention_reference`), on one decode step's
    shapes (Qwen2.5-0.5B's heads by default) in bf16, each row with its own left padding."""
    import jax
    import jax.numpy as jnp

    from duel.models import layers

    kq, kk, kv, kl = jax.random.split(jax.random.key(seed), 4)
    q = jax.random.normal(kq, (batch, 1, heads, dim), jnp.bfloat16)
    k = jax.random.normal(kk, (batch, slots, kv_heads, dim), jnp.bfloat16)
    v = jax.random.normal(kv, (batch, slots, kv_heads, dim), jnp.bfloat16)
    start = jax.random.randint(kl, (batch,), 0, slots // 2)
    mask = (jnp.arange(slots)[None, :] >= start[:, None])[:, None, :]  # [B, 1, S]
    ref = layers.attention_reference(q, k, v, mask).astype(jnp.float32)
    used = layers.attention
    xla = getattr(used, "xla", used)
    err = lambda f: float(jnp.max(jnp.abs(jax.jit(f)(q, k, v, mask).astype(jnp.float32) - ref)))
    return {"shape": [batch, slots, heads, kv_heads, dim], "patched_vs_reference_max_abs": err(used),
            "xla_vs_reference_max_abs": err(xla), "patched": used is not xla}


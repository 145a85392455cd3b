"""One sampling step on this machine's backend: `sample_tokens_one_pass` (one variadic reduction
over the logits, the accelerator path of `duel.sampling.sample_tokens`) against
`sample_tokens_reference` (argmax + two logsumexps + two gathers, the CPU path), interleaved call
by call, jitted, bf16 logits, temperature 1. It is why `sample_tokens` lowers to the reference
on the CPU backend (`jax.lax.platform_dependent`).

    .venv/bin/python bench/sample_step.py            # bench/results/sample_step.json
    .venv/bin/python bench/sample_step.py --check    # tiny, writes into the check results dir
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np

from bench.common import print_table, write_result


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=200, help="calls of each, interleaved")
    p.add_argument("--check", action="store_true")
    args = p.parse_args(argv)
    from duel.sampling import sample_tokens_one_pass, sample_tokens_reference

    shapes = [(8, 32)] if args.check else [(512, 32), (64, 32_000), (64, 151_936)]
    repeat = 3 if args.check else args.repeat
    rows = []
    for B, V in shapes:
        logits = jax.random.normal(jax.random.key(0), (B, V), jnp.float32).astype(jnp.bfloat16)
        keys = jax.random.split(jax.random.key(1), B)
        a = (keys, jnp.float32(1.0), jnp.int32(0), jnp.float32(1.0))
        fns = {"one_pass": jax.jit(sample_tokens_one_pass), "reference": jax.jit(sample_tokens_reference)}
        times = {k: [] for k in fns}
        for f in fns.values():
            jax.block_until_ready(f(logits, *a))  # compile
        load = os.getloadavg()[0]
        n = max(3, repeat if V < 10_000 else repeat // 20)
        for _ in range(n):
            for k, f in fns.items():
                t0 = time.perf_counter()
                jax.block_until_ready(f(logits, *a))
                times[k].append(time.perf_counter() - t0)
        one, ref = (1e3 * float(np.median(times[k])) for k in ("one_pass", "reference"))
        rows.append({"B": B, "V": V, "one_pass_ms": one, "reference_ms": ref, "one_pass/reference": one / ref,
                     "calls": n, "load_1min": load})
    write_result("sample_step", {"backend": jax.default_backend(), "rows": rows}, check=args.check)
    print_table(rows, title=f"one sampling step on {jax.default_backend()}, median ms (interleaved)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

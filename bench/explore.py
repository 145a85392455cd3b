"""Benchmark: pair selection and one ERM update at the issue's sizes.

- select_pairs for K = 20 members, P = 128 prompts, M = 20 candidates, jitted (target <= 5 ms)
- one ERM update: 5 Adam steps on a batch of 128 pairs, F = 256 features, K = 20, hidden
  (128, 128) (target <= 20 ms), and the plain reference implementation beside it

Also splits the ERM update into its parts (forward only, one step) so a miss can be explained.
Run: .venv/bin/python -m bench.explore [--feature-dim F] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/explore.py` works too

import jax
import jax.numpy as jnp
import numpy as np

from bench.common import matmul_tflops, print_table, timeit, write_result
from duel.ensemble import ERM, ERMConfig, erm_loss, rewards, update
from duel.explore import STRATEGIES, select_pairs


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--feature-dim", type=int, default=256)
    p.add_argument("--repeat", type=int, default=20)
    args = p.parse_args(argv)
    K, P, M, B, F = 20, 128, 20, 128, args.feature_dim
    load_before = os.getloadavg()[0]  # other jobs on the machine distort every number here
    rows = []

    r = jax.random.normal(jax.random.key(0), (K, P, M))
    opts = {
        "apl": {"implicit_rewards": r[0], "entropy": jnp.ones(P)},
        "xpo": {"from_reference": jnp.arange(M)[None].repeat(P, 0) >= M // 2},
    }
    for s in STRATEGIES:
        key = jax.random.key(1)
        fn = lambda: jax.block_until_ready(select_pairs(s, r, key, **opts.get(s, {})))  # noqa: E731
        t = timeit(fn, warmup=2, repeat=args.repeat)
        rows.append({"op": f"select_pairs {s}", "shape": f"K={K} P={P} M={M}", "ms": 1e3 * t, "target_ms": 5.0})

    cfg = ERMConfig(num_members=K, hidden=(128, 128), steps_per_update=5)
    erm = ERM.create(F, cfg, jax.random.key(0))
    rng = np.random.default_rng(0)
    fa, fb = (jnp.asarray(rng.normal(size=(B, F)), jnp.float32) for _ in range(2))
    prob = jnp.asarray(rng.random(B), jnp.float32)
    key = jax.random.key(2)
    shape = f"K={K} B={B} F={F} h=128x128"
    t = timeit(lambda: jax.block_until_ready(update(erm, fa, fb, prob, 1000, key)), warmup=2, repeat=args.repeat)
    rows.append({"op": "erm_update (5 Adam steps)", "shape": shape, "ms": 1e3 * t, "target_ms": 20.0})
    tr = timeit(lambda: jax.block_until_ready(update(erm, fa, fb, prob, 1000, key, reference=True)), warmup=2,
                repeat=args.repeat)
    rows.append({"op": "erm_update, plain reference (5 steps)", "shape": shape, "ms": 1e3 * tr, "target_ms": float("nan")})
    t1 = timeit(lambda: jax.block_until_ready(update(erm, fa, fb, prob, 1000, key, steps=1)), warmup=2, repeat=args.repeat)
    rows.append({"op": "erm_update (1 Adam step)", "shape": shape, "ms": 1e3 * t1, "target_ms": float("nan")})
    grad = jax.jit(jax.grad(lambda prm: erm_loss(prm, erm.anchor, fa, fb, prob, jnp.ones((K, B)), 1000.0, 1.0)[0]))
    tg = timeit(lambda: jax.block_until_ready(grad(erm.params)), warmup=2, repeat=args.repeat)
    rows.append({"op": "erm loss+grad", "shape": shape, "ms": 1e3 * tg, "target_ms": float("nan")})
    x = jnp.concatenate([fa, fb])
    tf = timeit(lambda: jax.block_until_ready(rewards(erm.params, x)), warmup=2, repeat=args.repeat)
    rows.append({"op": "erm forward (2B rows)", "shape": shape, "ms": 1e3 * tf, "target_ms": float("nan")})
    # FLOPs of one step, 2B rows x K members: forward 1x, backward 2x (weight and input
    # gradients) except the first layer, whose input (the features) needs no gradient: 1x
    sizes = (F, 128, 128, 1)
    macs = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    flops = 2 * (2 * B) * K * (2 * macs[0] + 3 * sum(macs[1:]))
    rows.append({"op": "erm step GFLOP/s", "shape": shape, "ms": flops / t1 / 1e9, "target_ms": float("nan")})
    # the floor: 5 steps of FLOPs at this machine's measured float32 matmul rate
    rate = matmul_tflops(1024, "float32") * 1e12
    rows.append({"op": "matmul f32 GFLOP/s (1024^3)", "shape": "", "ms": rate / 1e9, "target_ms": float("nan")})
    rows.append({"op": "erm_update floor at that rate", "shape": shape, "ms": 1e3 * 5 * flops / rate, "target_ms": 20.0})

    write_result("explore", {"rows": rows, "step_flops": flops, "matmul_f32_flops": rate,
                             "load_avg_1min": [load_before, os.getloadavg()[0]]})
    print_table(rows, title=f"duel.explore / duel.ensemble on {jax.default_backend()} ({jax.devices()[0].device_kind})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

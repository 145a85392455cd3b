"""Benchmark: pair selection and one ERM update at the issue's sizes and at the demo's.

- select_pairs for K = 20 members, P = 128 prompts, M = 20 candidates, jitted (target <= 5 ms)
- one ERM update: 5 Adam steps on a batch of 128 pairs, F = 256 features, K = 20, hidden
  (128, 128) (target <= 20 ms), and the plain reference implementation beside it
- one ERM update at the demo preset's shapes (issue 17: target <= 20 ms), read from the preset
  and the learner: K, hidden, steps_per_update and bootstrap from `erm:` (learner.configs.erm_config),
  the batch from learner.learner.ERM_BATCH (`steps_per_update` batches drawn from the replay
  buffer, one per Adam step), F from learner.setup.feature_dim (the demo policy's hidden size);
  plus the learner's whole ERM stage as it runs it (buffer sample + update + metrics)

Old against new: the plain reference (`update(..., reference=True)`, the old code path) and the
fast path, interleaved call by call in one process, `--reps` repetitions of `--repeat` calls
each; each repetition records the load average; the rows are the medians over repetitions (a 2-core machine
shared with other jobs). Also splits the K = 20 update into its parts (forward only, one step)
and gives its floor at the machine's measured float32 matmul rate, so a miss can be explained.
Run: .venv/bin/python -m bench.explore [--feature-dim F] [--repeat N] [--reps R] [--config demo]
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
from duel.ensemble import ERM, ERMConfig, ReplayBuffer, erm_loss, rewards, update
from duel.explore import STRATEGIES, select_pairs


def interleaved(fns: dict, reps: int, repeat: int) -> dict:
    """{name: fn} timed call by call in turn (the order reversed every other round), `reps`
    repetitions of `repeat` rounds -> {name: {"ms": median over repetitions of the median call,
    "ms_reps": [...]}, "load": [...]}: a burst of load from other jobs hits all of them alike."""
    import time

    for fn in fns.values():
        fn()
        fn()  # compiled and warm
    out = {k: [] for k in fns}
    load = []
    names = list(fns)
    for _ in range(reps):
        times = {k: [] for k in names}
        for i in range(repeat):
            for k in (names if i % 2 == 0 else names[::-1]):
                t = time.perf_counter()
                fns[k]()
                times[k].append(time.perf_counter() - t)
        for k in names:
            out[k].append(1e3 * float(np.median(times[k])))
        load.append(os.getloadavg()[0])
    return {**{k: {"ms": float(np.median(v)), "ms_reps": v} for k, v in out.items()}, "load": load}


def demo_erm_shapes(config: str) -> dict:
    """The ERM update's shapes in a run of preset `config`, read where the learner reads them."""
    import types

    from launch.presets import load_config
    from learner.configs import erm_config
    from learner.learner import ERM_BATCH
    from learner.setup import feature_dim, resolve_task

    cfg = load_config(config, ["logging.tensorboard=false"])
    if cfg.policy.path or cfg.erm.encoder:  # a model directory: its config.json
        from duel.models import read_config
        from learner.setup import model_dir_for

        model_config = read_config(model_dir_for(cfg))
    else:  # the task's starting policy (built on first use; its width is the task's)
        model_config = types.SimpleNamespace(hidden_size=resolve_task(cfg).model["hidden_size"])
    return {"cfg": cfg, "erm": erm_config(cfg), "batch": ERM_BATCH, "feature_dim": feature_dim(cfg, model_config)}


def demo_rows(config: str, reps: int, repeat: int) -> tuple[list[dict], dict]:
    """Old (reference) vs new ERM update at the preset's shapes, and the learner's ERM stage."""
    from learner.learner import Learner

    d = demo_erm_shapes(config)
    cfg, ec, B, F = d["cfg"], d["erm"], d["batch"], d["feature_dim"]
    S = ec.steps_per_update
    erm = ERM.create(F, ec, jax.random.key(0))
    buffer = ReplayBuffer(cfg.erm.buffer_size, F)
    rng = np.random.default_rng(0)
    n = 16 * cfg.prompts_per_step  # 16 steps of oracle labels in the buffer
    buffer.add(rng.normal(size=(n, F)), rng.normal(size=(n, F)), rng.random(n))
    key = jax.random.key(2)
    fa, fb, prob = buffer.sample(key, B, num_batches=S)  # as Learner._update_erm draws them
    stage = type("Stage", (), {})()  # the learner's ERM stage on its own: Learner._update_erm
    stage.cfg, stage.buffer, stage.erm = cfg, buffer, erm
    no_pairs = type("Labeled", (), {"pairs": None})()  # nothing new to add: the update alone
    real = np.zeros(cfg.prompts_per_step, bool)
    t = interleaved({
        "old": lambda: jax.block_until_ready(update(erm, fa, fb, prob, buffer.total, key, reference=True)),
        "new": lambda: jax.block_until_ready(update(erm, fa, fb, prob, buffer.total, key)),
        "stage": lambda: Learner._update_erm(stage, no_pairs, real, 7),
    }, reps, repeat)
    shape = f"K={ec.num_members} S={S}x B={B} F={F} h={'x'.join(map(str, ec.hidden))}"
    rows = [
        {"op": f"{config}: erm_update, plain reference (old)", "shape": shape, "ms": t["old"]["ms"], "target_ms": float("nan")},
        {"op": f"{config}: erm_update (new)", "shape": shape, "ms": t["new"]["ms"], "target_ms": 20.0},
        {"op": f"{config}: learner ERM stage (sample+update+metrics)", "shape": shape, "ms": t["stage"]["ms"],
         "target_ms": 20.0},
    ]
    info = {"config": config, "shape": {"num_members": ec.num_members, "hidden": list(ec.hidden), "steps": S,
                                        "batch": B, "feature_dim": F, "bootstrap": ec.bootstrap},
            "old_ms_reps": t["old"]["ms_reps"], "new_ms_reps": t["new"]["ms_reps"],
            "stage_ms_reps": t["stage"]["ms_reps"], "load_avg_1min_reps": t["load"],
            "old_over_new": t["old"]["ms"] / t["new"]["ms"]}
    return rows, info


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--feature-dim", type=int, default=256)
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--reps", type=int, default=5, help="interleaved old/new repetitions")
    p.add_argument("--config", default="demo", help="preset whose ERM shapes get their own rows")
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
    ab = interleaved({
        "old": lambda: jax.block_until_ready(update(erm, fa, fb, prob, 1000, key, reference=True)),
        "new": lambda: jax.block_until_ready(update(erm, fa, fb, prob, 1000, key)),
    }, args.reps, args.repeat)
    rows.append({"op": "erm_update (5 Adam steps)", "shape": shape, "ms": ab["new"]["ms"], "target_ms": 20.0})
    rows.append({"op": "erm_update, plain reference (5 steps)", "shape": shape, "ms": ab["old"]["ms"],
                 "target_ms": float("nan")})
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
    demo, demo_info = demo_rows(args.config, args.reps, 5 * args.repeat)  # ~3 ms a call: more calls
    rows.extend(demo)

    write_result("explore", {"rows": rows, "step_flops": flops, "matmul_f32_flops": rate,
                             "erm_update_k20": {"old_ms_reps": ab["old"]["ms_reps"], "new_ms_reps": ab["new"]["ms_reps"],
                                                "load_avg_1min_reps": ab["load"],
                                                "old_over_new": ab["old"]["ms"] / ab["new"]["ms"]},
                             "erm_update_demo": demo_info,
                             "load_avg_1min": [load_before, os.getloadavg()[0]]})
    print_table(rows, title=f"duel.explore / duel.ensemble on {jax.default_backend()} ({jax.devices()[0].device_kind})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The distributed loop on the demo preset: per-step time split, orchestration overhead, publish bandwidth.

    .venv/bin/python bench/loop.py                 # demo preset, 40 steps, 2 generators
    .venv/bin/python bench/loop.py --steps 60 --mode async --set max_staleness=1

Step time split: generate (sampling + frozen pass, slowest generator), select (ERM rewards +
pair selection), oracle, learn (ledger fsync + ERM + policy update) and publish, from the
metrics the loop writes; the wall time of a step is the time between consecutive ends of steps
(everything the driver does: Ray calls, metrics, progress). Orchestration overhead = wall time
not spent in generate/select/oracle/learn (publish counts as overhead). Warm-up steps (compiles)
and the steps that evaluate or checkpoint are left out. Target: <= 10% of wall time.

Publish bandwidth: bytes of the published policy / (learner `ray.put` + every generator's load
into its model) on the demo policy and on a larger payload through the same code path
(`Learner.publish` -> `GeneratorCore.load`), against a plain host memory copy of the same bytes
on this machine. Target: >= 0.5x the copy. Writes bench/results/loop.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import print_table, write_result

PHASES = ("generate", "select", "oracle", "learn", "publish")


def run_loop(args) -> dict:
    import ray

    from launch.presets import load_config
    from duel.metrics import read_metrics
    from learner.loop import init_ray, run_experiment

    over = [f"steps={args.steps}", f"mode={args.mode}", "eval.every=0", "checkpoint.every=0",
            "logging.progress=false", "logging.tensorboard=false", *args.set]
    cfg = load_config(args.config, over)
    run_dir = Path(tempfile.mkdtemp(prefix="bench-loop-"))
    ends: dict[int, float] = {}
    init_ray()
    load_before = os.getloadavg()[0]  # other jobs on the machine distort every number here
    t0 = time.perf_counter()
    run_experiment(cfg, run_dir, hooks={"after_step": lambda loop, step: ends.__setitem__(step, time.perf_counter())})
    total = time.perf_counter() - t0
    ray.shutdown()
    rows = {r["step"]: r for r in read_metrics(run_dir, "train")}
    steps = [s for s in sorted(ends) if s - 1 in ends and s > args.warmup and s < cfg.steps]
    wall = np.array([ends[s] - ends[s - 1] for s in steps])
    split = {p: np.array([rows[s][f"time_{p}"] for s in steps]) for p in PHASES}
    work = sum(split[p] for p in ("generate", "select", "oracle", "learn"))
    overhead = wall - work
    out = {"config": args.config, "mode": cfg.mode, "generators": cfg.resources.generators,
           "prompts_per_step": cfg.prompts_per_step, "candidates": cfg.candidates,
           "steps_measured": len(steps), "run_seconds": total,
           "wall_ms": 1e3 * float(wall.mean()),
           **{f"{p}_ms": 1e3 * float(split[p].mean()) for p in PHASES},
           "overhead_ms": 1e3 * float(overhead.mean()),
           "overhead_fraction": float(overhead.sum() / wall.sum()),
           "publish_fraction": float(split["publish"].sum() / wall.sum()),
           "load_avg_1min": [load_before, os.getloadavg()[0]]}
    return out


def host_copy_gbs(nbytes: int, repeat: int = 5) -> float:
    """GB/s of a plain host memory copy (np.copyto into a preallocated buffer), best of repeat."""
    src = np.ones(nbytes // 4, np.float32)
    dst = np.empty_like(src)
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        np.copyto(dst, src)
        best = min(best, time.perf_counter() - t)
    return nbytes / best / 1e9


def publish_bandwidth(config: str, layers: int, hidden: int, repeat: int = 8) -> list[dict]:
    """Publish through the loop's path, learner actor -> 2 generator actors, on two payloads.

    A run publishes every step: the number is the steady state, the median of the last half
    of `repeat` publishes (the object store recycles its memory after the first few; the first
    publish, with fresh shared-memory pages, is reported apart)."""
    import jax.numpy as jnp
    import ray

    from actors.generator import Generator, GeneratorSpec
    from launch.presets import load_config
    from duel.models import ModelConfig, build_model, save_pretrained
    from duel.tasks.tokenizer import build_tokenizer, save_tokenizer
    from learner.learner import LearnerActor
    from learner.loop import init_ray
    from learner.setup import model_dir_for

    results = []
    base = load_config(config, ["logging.tensorboard=false"])
    big = Path(tempfile.mkdtemp(prefix="bench-publish-")) / "model"
    tok = build_tokenizer(list("0123456789+="), "char")
    mc = ModelConfig(family="llama", vocab_size=32, hidden_size=hidden, num_layers=layers,
                     num_heads=8, num_kv_heads=8, head_dim=hidden // 8, intermediate_size=4 * hidden,
                     bos_token_id=1, eos_token_id=(2,), pad_token_id=0, architecture="LlamaForCausalLM")
    save_pretrained(build_model(mc, seed=0, dtype=jnp.float32), mc, big)
    save_tokenizer(tok, big)
    init_ray()
    for name, model_dir in (("demo policy", model_dir_for(base)), (f"llama {layers}x{hidden}", str(big))):
        for dtype in ("float32", "bfloat16"):
            cfg = load_config(config, ["logging.tensorboard=false", f"policy.compute_dtype={dtype}"])
            run_dir = tempfile.mkdtemp(prefix="bench-publish-run-")
            learner = LearnerActor.remote(cfg, model_dir, run_dir)
            gens = [Generator.remote(model_dir, GeneratorSpec(seed=0, candidates=2, strategy="passive",
                                                              compute_dtype=dtype)) for _ in range(2)]
            times, puts = [], []
            for v in range(repeat):
                ray.get(learner.__ray_call__.remote(  # the learner's version is its counters' (learner.steps)
                    lambda self, v: setattr(self, "counters", dataclasses.replace(self.counters, version=v)), v))
                t = time.perf_counter()
                ref = ray.get(learner.publish.remote())[0]
                puts.append(time.perf_counter() - t)
                ray.get([g.load.remote(ref, v) for g in gens])
                times.append(time.perf_counter() - t)
                del ref
            nbytes = ray.get(learner.__ray_call__.remote(lambda self: self.publish_bytes))
            t = float(np.median(times[repeat // 2:]))
            copy = host_copy_gbs(nbytes)
            results.append({"payload": name, "dtype": dtype, "MB": nbytes / 1e6, "publish_ms": 1e3 * t,
                            "put_ms": 1e3 * float(np.median(puts[repeat // 2:])),
                            "first_publish_ms": 1e3 * times[0],
                            "publish_GBps": nbytes / t / 1e9, "host_copy_GBps": copy,
                            "ratio": nbytes / t / 1e9 / copy})
            for a in (learner, *gens):
                ray.kill(a)
    ray.shutdown()
    return results


def previous_publish(name: str) -> dict:
    """{"publish", "publish_measured"} of results NAME.json when it holds publish rows, else {}."""
    import json

    from bench.common import results_dir

    path = results_dir() / f"{name}.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    if not old.get("publish"):
        return {}
    return {"publish": old["publish"], "publish_measured": old.get("publish_measured", old.get("time"))}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="demo")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=3, help="first steps left out (compiles)")
    p.add_argument("--mode", default="sync", choices=("sync", "async"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--layers", type=int, default=8, help="layers of the larger publish payload")
    p.add_argument("--hidden", type=int, default=1024, help="width of the larger publish payload")
    p.add_argument("--skip-loop", action="store_true")
    p.add_argument("--skip-publish", action="store_true",
                   help="loop only; the publish rows of the existing NAME.json are kept")
    p.add_argument("--name", default="loop", help="bench/results/NAME.json")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    loop = None if args.skip_loop else run_loop(args)
    publish = [] if args.skip_publish else publish_bandwidth(args.config, args.layers, args.hidden)
    payload = {"loop": loop, "publish": publish,
               "targets": {"overhead_fraction_max": 0.10, "publish_vs_copy_min": 0.5}}
    if args.skip_publish:  # keep the publish numbers of the file's last run, marked as such
        payload.update(previous_publish(args.name))
    path = write_result(args.name, payload)
    if loop:
        print_table([{"phase": p, "ms/step": loop[f"{p}_ms"],
                      "% of wall": 100 * loop[f"{p}_ms"] / loop["wall_ms"]} for p in PHASES]
                    + [{"phase": "overhead (not generate/select/oracle/learn)", "ms/step": loop["overhead_ms"],
                        "% of wall": 100 * loop["overhead_fraction"]},
                       {"phase": "wall", "ms/step": loop["wall_ms"], "% of wall": 100.0}],
                    title=f"loop step split: {loop['config']} preset, {loop['mode']}, "
                          f"{loop['generators']} generators, {loop['steps_measured']} steps")
    if publish:
        print_table(publish, title="publish: learner ray.put -> 2 generators loaded, vs host memory copy")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""The distributed loop on the demo preset: per-step time split, orchestration overhead, publish bandwidth.

    .venv/bin/python bench/loop.py                 # demo preset, 40 steps, 2 generators, old/new x 5
    .venv/bin/python bench/loop.py --steps 60 --mode async --set max_staleness=1

Step time split: generate (sampling + frozen pass, slowest generator), select (ERM rewards +
pair selection), oracle, learn (ledger fsync + ERM + policy update) and publish, from the
metrics the loop writes; the wall time of a step is the time between consecutive ends of steps
(everything the driver does: Ray calls, metrics, progress). Orchestration overhead = wall time
not spent in generate/select/oracle/learn (publish counts as overhead). Warm-up steps (compiles)
and the steps that evaluate or checkpoint are left out. Target: <= 10% of wall time.

Old against new in one Ray session: `--reps` runs of each loop order, alternating (old, new,
new, old, ...): "old" waits for the learner's answer before sending the next generation
(`run_experiment(pipeline=False)`, the order before issue 17), "new" sends it with the update
(`pipeline=True`, the default). Each run is reported with the machine's load average; the
result is the median over the runs of each. In the new order the learner's `time_put` is the
pack alone (Ray copies the returned weights into the object store after the call): that copy
counts as overhead, not publish.

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
# the loop alone: no eval, checkpoint, progress display or tensorboard (also bench/loop_profile.py)
LOOP_SETTINGS = ("eval.every=0", "checkpoint.every=0", "logging.progress=false", "logging.tensorboard=false")


def run_loop(args, pipeline: bool = True) -> dict:
    """One run of the loop (Ray already started) -> its step split."""
    from launch.presets import load_config
    from duel.metrics import read_metrics
    from learner.loop import run_experiment

    over = [f"steps={args.steps}", f"mode={args.mode}", *LOOP_SETTINGS, *args.set]
    cfg = load_config(args.config, over)
    run_dir = Path(tempfile.mkdtemp(prefix="bench-loop-"))
    ends: dict[int, float] = {}
    load_before = os.getloadavg()[0]  # other jobs on the machine distort every number here
    t0 = time.perf_counter()
    run_experiment(cfg, run_dir, pipeline=pipeline,
                   hooks={"after_step": lambda loop, step: ends.__setitem__(step, time.perf_counter())})
    total = time.perf_counter() - t0
    rows = {r["step"]: r for r in read_metrics(run_dir, "train")}
    steps = [s for s in sorted(ends) if s - 1 in ends and s > args.warmup and s < cfg.steps]
    wall = np.array([ends[s] - ends[s - 1] for s in steps])
    split = {p: np.array([rows[s][f"time_{p}"] for s in steps]) for p in PHASES}
    work = sum(split[p] for p in ("generate", "select", "oracle", "learn"))
    overhead = wall - work
    out = {"order": "new" if pipeline else "old",
           "config": args.config, "mode": cfg.mode, "generators": cfg.resources.generators,
           "prompts_per_step": cfg.prompts_per_step, "candidates": cfg.candidates,
           "steps_measured": len(steps), "run_seconds": total,
           "wall_ms": 1e3 * float(wall.mean()),
           **{f"{p}_ms": 1e3 * float(split[p].mean()) for p in PHASES},
           "overhead_ms": 1e3 * float(overhead.mean()),
           "overhead_fraction": float(overhead.sum() / wall.sum()),
           "publish_fraction": float(split["publish"].sum() / wall.sum()),
           "load_avg_1min": [load_before, os.getloadavg()[0]]}
    return out


def compare_loops(args) -> dict:
    """`args.reps` runs of each loop order, alternating -> {"runs": [...], "old": medians,
    "new": medians, "overhead_ratio": old / new}."""
    import ray

    from learner.loop import init_ray

    init_ray()
    runs, trips = [], []
    try:
        for r in range(args.reps):
            for pipeline in ((False, True) if r % 2 == 0 else (True, False)):
                runs.append(run_loop(args, pipeline))
                x = runs[-1]
                print(f"run {len(runs)} {x['order']}: wall {x['wall_ms']:.1f} ms, overhead "
                      f"{x['overhead_ms']:.1f} ms ({100 * x['overhead_fraction']:.1f}%), "
                      f"load {x['load_avg_1min'][0]:.2f}->{x['load_avg_1min'][1]:.2f}", flush=True)
            trips.append(ray_round_trip_ms())
    finally:
        ray.shutdown()
    keys = ["wall_ms", *(f"{p}_ms" for p in PHASES), "overhead_ms", "overhead_fraction", "publish_fraction"]
    med = {o: {k: float(np.median([x[k] for x in runs if x["order"] == o])) for k in keys}
           for o in ("old", "new")}
    for o in med:
        med[o]["load_avg_1min"] = [x["load_avg_1min"] for x in runs if x["order"] == o]
    # each repetition's old and new run back to back: the difference of their overhead fractions
    paired = [a["overhead_fraction"] - b["overhead_fraction"] if a["order"] == "old" else
              b["overhead_fraction"] - a["overhead_fraction"] for a, b in zip(runs[::2], runs[1::2])]
    return {"runs": runs, **med, "overhead_fraction_old_minus_new_paired": paired,
            "overhead_fraction_old_minus_new_median": float(np.median(paired)),
            "overhead_ms_old_over_new": med["old"]["overhead_ms"] / med["new"]["overhead_ms"],
            "wall_ms_old_over_new": med["old"]["wall_ms"] / med["new"]["wall_ms"],
            "ray_round_trip_ms": trips, "ray_round_trip_ms_median": float(np.median(trips))}


def ray_round_trip_ms(calls: int = 200) -> float:
    """Median ms of `ray.get(actor.method.remote())` on an actor method that does nothing: the
    floor of one Ray round trip on this machine at this moment (a step makes 3 in a row)."""
    import ray

    @ray.remote(num_cpus=0)
    class Echo:
        def echo(self, x=None):
            return x

    a = Echo.remote()
    ray.get(a.echo.remote())
    times = []
    for _ in range(calls):
        t = time.perf_counter()
        ray.get(a.echo.remote())
        times.append(time.perf_counter() - t)
    ray.kill(a)
    return 1e3 * float(np.median(times))


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
    p.add_argument("--reps", type=int, default=5, help="runs of each loop order (old, new), alternating")
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

    loop = None if args.skip_loop else compare_loops(args)
    publish = [] if args.skip_publish else publish_bandwidth(args.config, args.layers, args.hidden)
    payload = {"loop": loop, "publish": publish,
               "targets": {"overhead_fraction_max": 0.10, "publish_vs_copy_min": 0.5}}
    if args.skip_publish:  # keep the publish numbers of the file's last run, marked as such
        payload.update(previous_publish(args.name))
    path = write_result(args.name, payload)
    if loop:
        old, new, run = loop["old"], loop["new"], loop["runs"][0]
        print_table([{"phase": p, "old ms/step": old[f"{p}_ms"], "new ms/step": new[f"{p}_ms"],
                      "old % of wall": 100 * old[f"{p}_ms"] / old["wall_ms"],
                      "new % of wall": 100 * new[f"{p}_ms"] / new["wall_ms"]} for p in PHASES]
                    + [{"phase": "overhead (not generate/select/oracle/learn)", "old ms/step": old["overhead_ms"],
                        "new ms/step": new["overhead_ms"], "old % of wall": 100 * old["overhead_fraction"],
                        "new % of wall": 100 * new["overhead_fraction"]},
                       {"phase": "wall", "old ms/step": old["wall_ms"], "new ms/step": new["wall_ms"],
                        "old % of wall": 100.0, "new % of wall": 100.0}],
                    title=f"loop step split, median of {args.reps} runs each: {run['config']} preset, "
                          f"{run['mode']}, {run['generators']} generators, {run['steps_measured']} steps")
        print(f"overhead fraction old - new, per repetition: "
              f"{[round(100 * d, 1) for d in loop['overhead_fraction_old_minus_new_paired']]} points "
              f"(median {100 * loop['overhead_fraction_old_minus_new_median']:.1f})")
        print(f"overhead old/new: {loop['overhead_ms_old_over_new']:.2f}x; one Ray round trip (no-op "
              f"actor call): {loop['ray_round_trip_ms_median']:.2f} ms median")
    if publish:
        print_table(publish, title="publish: learner ray.put -> 2 generators loaded, vs host memory copy")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

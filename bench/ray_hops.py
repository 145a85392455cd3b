"""The loop's Ray plumbing alone: what one sync step costs in hops on this machine, with no duel code.

    .venv/bin/python bench/ray_hops.py                 # demo-sized payloads and work, 3 x 60 steps
    .venv/bin/python bench/ray_hops.py --gen-ms 0 --learn-ms 0   # the hops alone, idle cores

Stand-in actors replay one step of the demo's sync loop: a learner returns the new weights (a
0.9 MB array, as the demo's published policy), two generators take them and each return a
pair batch (35 KB) after `--gen-ms` of busy CPU work (spinning, as sampling keeps a core
busy), and the learner takes both after `--oracle-ms` + `--learn-ms` of its own. The work is
known exactly, so wall - work is what Ray's hops cost: the floor of `bench/loop.py`'s
"orchestration overhead" for any loop built from these calls, whatever duel does around them.

Three ways to wire the same step, each timed over `--steps` steps (after `--warmup`), `--reps`
times, alternating:

- `driver`: the driver gets each result and sends the next call (learner/loop.py's order with
  `pipeline=False`);
- `refs`: the driver sends every call with the previous calls' ObjectRefs as arguments and
  gets only the learner's answer (Ray hands results from actor to actor; learner/loop.py's
  `pipeline` order, and the "learner labels" prototype of the twenty-second session);
- `compiled`: the same graph as a Ray Compiled Graph (`experimental_compile`: actors loop over
  shared-memory channels, no task submission per call).

Writes bench/results/ray_hops.json; overhead = (wall - work) / wall per step, median over reps.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import print_table, write_result


def spin(ms: float) -> None:
    """Keep this core busy for `ms` milliseconds (the stand-in for sampling or a train step)."""
    end = time.perf_counter() + ms / 1e3
    while time.perf_counter() < end:
        pass


def make_actors(args):
    import ray

    @ray.remote(num_cpus=0)
    class Learner:
        def __init__(self, weight_bytes: int, oracle_ms: float, learn_ms: float):
            self.weights = np.zeros(weight_bytes // 4, np.float32)
            self.work_ms = oracle_ms + learn_ms
            self.version = 0

        def publish(self, step=None):
            return self.weights

        def update(self, *parts):
            assert all(p.dtype == np.uint8 for p in parts)
            spin(self.work_ms)
            self.version += 1
            self.weights[0] = self.version  # a new version each step (the copy is real)
            return self.weights

        def get_version(self) -> int:
            return self.version

        def update_answer(self, *parts):
            """`refs`: the weights and a small answer (the LearnerStep) as two returns."""
            return self.update(*parts), {"version": self.version}

    @ray.remote(num_cpus=0)
    class Generator:
        def __init__(self, batch_bytes: int, gen_ms: float):
            self.batch = np.zeros(batch_bytes, np.uint8)
            self.gen_ms = gen_ms

        def step(self, weights):
            assert weights.dtype == np.float32
            spin(self.gen_ms)
            return self.batch

    learner = Learner.remote(int(args.weight_mb * 1e6), args.oracle_ms, args.learn_ms)
    gens = [Generator.remote(int(args.batch_kb * 1e3), args.gen_ms) for _ in range(args.generators)]
    ray.get([learner.publish.remote(), *[g.step.remote(np.zeros(1, np.float32)) for g in gens]])
    return learner, gens


def run_driver(learner, gens, steps: int) -> list[float]:
    """The driver in the middle: gets the generators' batches, sends them to the learner, gets
    the new weights' ref, sends the next generation."""
    import ray

    w = learner.publish.remote()
    ends = []
    for _ in range(steps):
        parts = ray.get([g.step.remote(w) for g in gens])
        w = learner.update.remote(*parts)
        ray.wait([w])
        ends.append(time.perf_counter())
    return ends


def run_refs(learner, gens, steps: int) -> list[float]:
    """Refs straight from actor to actor; the driver gets only each step's small answer, after
    sending the next step's generation with the new weights' ref."""
    import ray

    w = learner.publish.remote()
    futs = [g.step.remote(w) for g in gens]
    ends = []
    for _ in range(steps):
        w, answer = learner.update_answer.options(num_returns=2).remote(*futs)
        futs = [g.step.remote(w) for g in gens]
        ray.get(answer)
        ends.append(time.perf_counter())
    return ends


def run_compiled(learner, gens, steps: int) -> list[float]:
    """The step as a Ray Compiled Graph: publish -> generators -> update, executed per step."""
    import ray
    from ray.dag import InputNode

    with InputNode() as inp:
        w = learner.publish.bind(inp)
        out = learner.update.bind(*[g.step.bind(w) for g in gens])
    dag = out.experimental_compile()
    try:
        ends = []
        for s in range(steps):
            ray.get(dag.execute(s))
            ends.append(time.perf_counter())
        return ends
    finally:
        dag.teardown()


WIRINGS = {"driver": run_driver, "refs": run_refs, "compiled": run_compiled}


def measure(args) -> dict:
    import ray

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, configure_logging=False)
    work = args.gen_ms + args.oracle_ms + args.learn_ms  # the generators work in parallel
    runs = []
    try:
        for r in range(args.reps):
            order = list(WIRINGS) if r % 2 == 0 else list(WIRINGS)[::-1]
            for name in order:
                if name in args.skip:
                    continue
                learner, gens = make_actors(args)  # fresh actors: a compiled graph binds them for good
                load = os.getloadavg()[0]
                t0 = time.perf_counter()
                ends = WIRINGS[name](learner, gens, args.warmup + args.steps)
                wall = np.diff([t0, *ends])[args.warmup:] * 1e3
                updates = ray.get(learner.get_version.remote())  # (a compiled graph is torn down)
                if updates != args.warmup + args.steps:
                    raise RuntimeError(f"{name}: the learner updated {updates} times in "
                                       f"{args.warmup + args.steps} steps")
                runs.append({"wiring": name, "updates": updates, "wall_ms": float(np.median(wall)),
                             "overhead_ms": float(np.median(wall)) - work,
                             "overhead_fraction": 1.0 - work / float(np.median(wall)), "load_avg_1min": load})
                print(f"{name}: {runs[-1]['wall_ms']:.1f} ms per step, hops {runs[-1]['overhead_ms']:.1f} ms "
                      f"({100 * runs[-1]['overhead_fraction']:.1f}%), load {load:.2f}", flush=True)
                for a in (learner, *gens):
                    ray.kill(a)
    finally:
        ray.shutdown()
    med = {name: {k: float(np.median([x[k] for x in runs if x["wiring"] == name]))
                  for k in ("wall_ms", "overhead_ms", "overhead_fraction")}
           for name in WIRINGS if name not in args.skip}
    return {"runs": runs, "median": med, "work_ms": work}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--generators", type=int, default=2)
    p.add_argument("--gen-ms", type=float, default=18.0, help="each generator's work (demo: generate + select)")
    p.add_argument("--oracle-ms", type=float, default=2.0, help="the label stage's work (demo: oracle)")
    p.add_argument("--learn-ms", type=float, default=21.0, help="the learner's work (demo: learn)")
    p.add_argument("--weight-mb", type=float, default=0.9, help="published weights (demo policy: 0.9 MB)")
    p.add_argument("--batch-kb", type=float, default=35.0, help="one generator's pair batch")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--skip", action="append", default=[], choices=list(WIRINGS))
    p.add_argument("--name", default="ray_hops", help="bench/results/NAME.json")
    args = p.parse_args(argv)
    out = measure(args)
    path = write_result(args.name, {"settings": {k: v for k, v in vars(args).items() if k != "skip"}, **out,
                                    "target": {"overhead_fraction_max": 0.10}})
    print_table([{"wiring": k, "wall ms/step": v["wall_ms"], "work ms/step": out["work_ms"],
                  "hops ms/step": v["overhead_ms"], "hops % of wall": 100 * v["overhead_fraction"]}
                 for k, v in out["median"].items()],
                title=f"one sync step's Ray plumbing, median of {args.reps} runs x {args.steps} steps "
                      f"({args.generators} generators x {args.gen_ms} ms, learner {args.oracle_ms} + "
                      f"{args.learn_ms} ms, weights {args.weight_mb} MB)")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

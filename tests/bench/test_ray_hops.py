"""bench/ray_hops.py: every wiring drives the stand-in learner through every step, and the
overhead it reports is the step's wall time less the work the stand-ins spin."""

import argparse

import numpy as np

from bench import ray_hops


def test_every_wiring_runs_every_step_through_the_learner():
    a = argparse.Namespace(generators=2, gen_ms=2.0, oracle_ms=0.0, learn_ms=1.0, weight_mb=0.1,
                           batch_kb=1.0, steps=4, warmup=1, reps=1, skip=[], name="hops")
    out = ray_hops.measure(a)  # starts and shuts down its own Ray
    assert sorted(r["wiring"] for r in out["runs"]) == sorted(ray_hops.WIRINGS)
    for r in out["runs"]:
        assert r["updates"] == 5  # warmup + steps updates, one per step
        # generation then update, in series: no step is shorter than the work spun
        assert r["wall_ms"] >= 3.0
        assert np.isclose(r["overhead_ms"], r["wall_ms"] - 3.0)
        assert np.isclose(r["overhead_fraction"], 1 - 3.0 / r["wall_ms"])

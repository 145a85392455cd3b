"""The learner as Ray actors: one `LearnerActor`, or `learner.processes` JAX processes.

    learners = LearnerGroup(cfg, model_dir, run_dir, [layout.options("learner", i) ...])
    metrics, refs = learners.call("update_and_publish", labeled, step)   # rank 0's answer
    learners.rank0.lookup.remote(ids)                                   # rank 0 alone

With N > 1 processes every rank is a `LearnerProcess` actor: created without touching JAX, joined
into one `jax.distributed` group by `init_ray_group` (rank 0 picks the coordinator port on its
node), then `start()` builds its Learner over the mesh of every rank's devices. A call goes to
every rank with the same arguments (large ones `ray.put` once) because each step is one SPMD
program; rank 0's answer is returned. Rank 0 alone writes the ledger and puts the weights in the
object store (learner/learner.py); the ERM and replay buffer are small and deterministic, so
every rank computes them alike instead of shipping them from rank 0.
"""

from __future__ import annotations

import jax
import ray

from learner.distributed import DistributedMember, init_ray_group
from learner.learner import Learner, LearnerActor


class LearnerProcess(Learner, DistributedMember):
    """One JAX process of a multi-process learner (a Ray actor)."""

    def __init__(self, *args, **kwargs):  # no JAX here: jax.distributed must initialise first
        self._init_args = (args, kwargs)

    def start(self) -> dict:
        """Build this rank's Learner (after `init_distributed`)."""
        args, kwargs = self._init_args
        Learner.__init__(self, *args, **kwargs)
        return {"rank": self.rank, "processes": self.processes, "devices": jax.device_count(),
                "local_devices": jax.local_device_count()}


LearnerProcessActor = ray.remote(num_cpus=0, max_restarts=0)(LearnerProcess)


class LearnerGroup:
    """The learner's actors, rank order; `call` runs a Learner method on all of them."""

    def __init__(self, cfg, model_dir: str, run_dir: str, options: list[dict], *,
                 timeout_s: int = 300, **kwargs):
        n = cfg.learner.processes
        if len(options) != n:
            raise ValueError(f"LearnerGroup: {len(options)} placement options for learner.processes={n}")
        if n == 1:
            self.actors = [LearnerActor.options(**options[0]).remote(cfg, model_dir, run_dir, **kwargs)]
            self.info = None
            return
        self.actors = [LearnerProcessActor.options(**o).remote(cfg, model_dir, run_dir, **kwargs)
                       for o in options]
        init_ray_group(self.actors, timeout_s=timeout_s)
        self.info = wait_all([a.start.remote() for a in self.actors])

    @property
    def rank0(self):
        return self.actors[0]

    def call(self, name: str, *args):
        """`Learner.name(*args)` on every rank -> rank 0's result. The first error of any rank
        is raised at once (the other ranks may be blocked in a collective: kill the group)."""
        if len(self.actors) == 1:
            return ray.get(getattr(self.actors[0], name).remote(*args))
        args = tuple(a if a is None or isinstance(a, (bool, int, float, str)) else ray.put(a) for a in args)
        return wait_all([getattr(a, name).remote(*args) for a in self.actors])[0]

    def submit_update(self, labeled, step: int):
        """`Learner.update_and_pack` on the one learner process, not waited for -> (ObjectRef of
        the new version's Packed, ObjectRef of the LearnerStep)."""
        if len(self.actors) != 1:
            raise RuntimeError("LearnerGroup.submit_update: one learner process only")
        return self.actors[0].update_and_pack.options(num_returns=2).remote(labeled, step)

    def kill(self) -> None:
        for a in self.actors:
            try:
                ray.kill(a)
            except ValueError:  # not an actor handle any more
                continue


def wait_all(refs: list) -> list:
    """ray.get of every ref, raising the first error as soon as any ref fails."""
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        ray.get(ready[0])
    return ray.get(refs)

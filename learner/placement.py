"""Where each role runs: Ray resources per role and one placement group for the run.

Roles: the learner (`learner.processes` actors, one per JAX process), generators (`resources.generators`, one per device) and oracle actors
(`resources.oracle_actors`). Each role asks for its GPUs and, optionally, custom resources
(`{role}_resources` in the config when present, or the `extra` argument), e.g. a node started
with `resources={"generator": 2}` takes the generators. When any role asks for something, all
roles go into one placement group (strategy `resources.placement`) with one bundle per actor;
on a plain local machine (nothing asked) the actors take no reserved resources.
"""

from __future__ import annotations

import dataclasses

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

ROLES = ("learner", "generator", "oracle")


@dataclasses.dataclass
class RoleSpec:
    count: int
    num_cpus: float = 0.0
    num_gpus: float = 0.0
    resources: dict = dataclasses.field(default_factory=dict)

    def bundle(self) -> dict:
        b = {k: float(v) for k, v in self.resources.items() if v}
        if self.num_cpus:
            b["CPU"] = float(self.num_cpus)
        if self.num_gpus:
            b["GPU"] = float(self.num_gpus)
        return b


def role_specs(cfg, extra: dict | None = None) -> dict[str, RoleSpec]:
    """RoleSpecs from `cfg.resources` (+ `extra[role] = {"num_cpus", "num_gpus", "resources"}`)."""
    r = cfg.resources
    specs = {
        "learner": RoleSpec(cfg.learner.processes, num_gpus=r.learner_gpus,  # per process
                            resources=dict(getattr(r, "learner_resources", None) or {})),
        "generator": RoleSpec(r.generators, num_gpus=r.generator_gpus,
                              resources=dict(getattr(r, "generator_resources", None) or {})),
        "oracle": RoleSpec(r.oracle_actors, num_gpus=r.oracle_gpus,  # per actor (a reward model)
                           resources=dict(getattr(r, "oracle_resources", None) or {})),
    }
    for role, opts in (extra or {}).items():
        if role not in specs:
            raise ValueError(f"placement: unknown role {role!r}; roles: {', '.join(ROLES)}")
        s = specs[role]
        s.num_cpus = float(opts.get("num_cpus", s.num_cpus))
        s.num_gpus = float(opts.get("num_gpus", s.num_gpus))
        s.resources.update(opts.get("resources", {}))
    return specs


class Layout:
    """Ray options for every actor of the run (`options(role, i)`), from one placement group."""

    def __init__(self, specs: dict[str, RoleSpec], strategy: str = "PACK", timeout_s: float = 120):
        self.specs = specs
        self.pg = None
        self.index: dict[tuple[str, int], int] = {}
        bundles = []
        if any(s.bundle() for s in specs.values()):
            for role in ROLES:
                for i in range(specs[role].count):
                    self.index[(role, i)] = len(bundles)
                    # a bundle cannot be empty: a role that asks nothing takes a sliver of CPU
                    bundles.append(specs[role].bundle() or {"CPU": 0.01})
            self.pg = placement_group(bundles, strategy=strategy)
            ready, _ = ray.wait([self.pg.ready()], timeout=timeout_s)
            if not ready:
                remove_placement_group(self.pg)
                raise RuntimeError(
                    f"placement: the cluster cannot hold the bundles {bundles} with strategy "
                    f"{strategy} (waited {timeout_s:.0f}s); check resources.* in the config and "
                    f"the resources of the nodes: {ray.cluster_resources()}")

    def options(self, role: str, i: int = 0) -> dict:
        s = self.specs[role]
        opts: dict = {"num_cpus": 0, "num_gpus": s.num_gpus}
        if self.pg is not None:
            b = s.bundle() or {"CPU": 0.01}
            opts["num_cpus"] = b.get("CPU", 0)
            opts["resources"] = {k: v for k, v in b.items() if k not in ("CPU", "GPU")}
            opts["scheduling_strategy"] = PlacementGroupSchedulingStrategy(
                placement_group=self.pg, placement_group_bundle_index=self.index[(role, i)])
        return opts

    def close(self):
        if self.pg is not None:
            remove_placement_group(self.pg)
            self.pg = None

"""Typed results of one step: the run counters (owned by the learner), what one learner update
returns, and one step's generation in flight.

The learner owns the run counters: it counts each update's queries, synthetic and reused labels
(`RunCounters.after`), checkpoints them and restores them; the loop holds the latest answer
(`LearnerStep.counters`) and asks nothing else.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from duel.records import LabeledBatch, PairBatch, PromptBatch


@dataclasses.dataclass(frozen=True)
class RunCounters:
    step: int = 0  # learner updates done (= steps finished)
    version: int = 0  # weights version (one per update)
    queries: int = 0  # oracle queries paid; a label reused from the ledger was paid before a stop
    synthetic: int = 0  # pairs labelled by the ERM (never sent to the oracle)
    reused: int = 0  # labels taken from the ledger instead of paying again

    def after(self, labeled: LabeledBatch, step: int) -> "RunCounters":
        """The counters once `labeled` (learner step `step`, 0-based) has been learned from."""
        reused = 0 if labeled.from_ledger is None else int(np.sum(labeled.from_ledger))
        return RunCounters(step=step + 1, version=self.version + 1,
                           queries=self.queries + labeled.queries + reused,
                           synthetic=self.synthetic + labeled.synthetic_labels,
                           reused=self.reused + reused)

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunCounters":
        return cls(**{f.name: int(d[f.name]) for f in dataclasses.fields(cls)})


@dataclasses.dataclass(frozen=True)
class LearnerStep:
    """What `Learner.update_and_publish` returns."""

    metrics: dict[str, float]  # train-step and ERM metrics, time_learn, time_put
    counters: RunCounters  # after this update
    refs: list  # [ObjectRef] of the new version's published weights (rank 0; [] on other ranks)


@dataclasses.dataclass
class Job:
    """One step's generation in flight: the prompts, their split over the generators, the
    futures of the generators' PairBatches and the weights version they sample with."""

    step: int
    batch: PromptBatch
    shards: list[tuple[int, int]]
    futs: list[Any]
    version: int
    t0: float


@dataclasses.dataclass(frozen=True)
class Generated:
    """A job's pairs, joined over the generators, with the driver's clock for the step."""

    pairs: PairBatch
    t_wall: float  # perf_counter when the driver started waiting for this step
    t_wait: float  # seconds it waited for the generators

"""The run's labelled preference pairs, kept for extra policy updates (label replay).

    replay = PairReplay(capacity=1024)
    replay.add(pairs)                       # PairTensors (host): rows with weight 0 are left out
    batch = replay.sample(rng, 16)          # PairTensors of 16 rows drawn uniformly

One oracle answer can teach the policy more than once: after the update on a step's fresh
pairs, the learner makes `replay.updates` more updates, each on `replay.batch` pairs (default:
`prompts_per_step`) drawn from the newest `replay.capacity` labelled pairs of the run (as SEA's learner takes several
gradient steps on its buffer between weight syncs). Replaying a label never calls the oracle
and is never counted as a query: the learner's query counter only reads the oracle's answers.

Rows are stored at the widths of the first batch added (a run's prompts are encoded once to
one width and responses to `sampling.max_new_tokens`, so every later batch has them too); a
batch of other widths is an error. `state_dict` / `from_state_dict` round-trip the contents
exactly, so a resumed run replays what an uninterrupted one would (invariant 3).
"""

from __future__ import annotations

import numpy as np

FIELDS = ("prompt_ids", "prompt_mask", "chosen_ids", "chosen_mask", "rejected_ids", "rejected_mask",
          "ref_chosen", "ref_rejected", "prob")


class PairReplay:
    """Fixed-capacity ring buffer of PairTensors rows (NumPy, host side)."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"PairReplay needs capacity >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.rows: dict[str, np.ndarray] | None = None  # allocated by the first `add`
        self.size = 0
        self.head = 0
        self.total = 0  # rows ever added

    def __len__(self) -> int:
        return self.size

    def widths(self) -> tuple[int, int] | None:
        """(prompt width, response width) of the stored rows; None before the first add."""
        if self.rows is None:
            return None
        return self.rows["prompt_ids"].shape[1], self.rows["chosen_ids"].shape[1]

    def allocate(self, prompt_len: int, response_len: int) -> None:
        shapes = {"prompt_ids": (prompt_len,), "prompt_mask": (prompt_len,), "chosen_ids": (response_len,),
                  "chosen_mask": (response_len,), "rejected_ids": (response_len,),
                  "rejected_mask": (response_len,), "ref_chosen": (), "ref_rejected": (), "prob": ()}
        self.rows = {k: np.zeros((self.capacity, *s), np.int32 if len(s) else np.float32)
                     for k, s in shapes.items()}

    def add(self, pairs) -> int:
        """Store the rows of `pairs` (PairTensors of host arrays) whose weight is > 0 -> rows added."""
        keep = np.flatnonzero(np.asarray(pairs.weight) > 0)
        new = {k: np.asarray(getattr(pairs, k))[keep] for k in FIELDS}
        widths = (new["prompt_ids"].shape[1], new["chosen_ids"].shape[1])
        if self.rows is None:
            self.allocate(*widths)
        if widths != self.widths():
            raise ValueError(f"PairReplay.add: rows of widths (prompt, response) {widths}, but the "
                             f"replay holds {self.widths()}")
        n = len(keep)
        self.total += n
        if n > self.capacity:
            new = {k: v[-self.capacity:] for k, v in new.items()}
            self.head = (self.head + n - self.capacity) % self.capacity
            n = self.capacity
        idx = (self.head + np.arange(n)) % self.capacity
        for k, v in new.items():
            self.rows[k][idx] = v
        self.head = int((self.head + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)
        return n

    def sample(self, rng: np.random.Generator, batch_size: int):
        """`batch_size` rows drawn uniformly with replacement -> PairTensors (hard labels, weight 1)."""
        from duel.train import PairTensors

        if self.size == 0:
            raise ValueError("PairReplay.sample: the replay is empty")
        idx = rng.integers(0, self.size, batch_size)
        return PairTensors(**{k: self.rows[k][idx] for k in FIELDS}, weight=np.ones(batch_size, np.float32))

    def state_dict(self) -> dict[str, np.ndarray]:
        if self.rows is None:
            raise ValueError("PairReplay.state_dict: nothing added yet (allocate first)")
        return {**{k: v.copy() for k, v in self.rows.items()}, "size": np.asarray(self.size, np.int64),
                "head": np.asarray(self.head, np.int64), "total": np.asarray(self.total, np.int64)}

    def load_state_dict(self, state: dict) -> None:
        missing = {*FIELDS, "size", "head", "total"} - set(state)
        if missing:
            raise ValueError(f"PairReplay.load_state_dict: missing keys {sorted(missing)}")
        self.rows = {k: np.array(state[k]) for k in FIELDS}
        self.capacity = self.rows["prompt_ids"].shape[0]
        self.size, self.head, self.total = int(state["size"]), int(state["head"]), int(state["total"])

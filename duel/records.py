"""The records that flow through one step of the loop (DESIGN.md, "Records").

PromptBatch -> CandidateBatch -> PairBatch -> LabeledBatch. Arrays are NumPy on the host (they
cross Ray process boundaries); the learner moves them to its devices. Shapes use P prompts,
M candidates per prompt, Tp prompt tokens, N response tokens, F feature width.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass
class PromptBatch:
    """P prompts, left-padded to a common length."""

    prompt_ids: list[str]  # stable row ids from the task / dataset (ledger key)
    texts: list[str]  # prompt text as shown to the oracle
    input_ids: np.ndarray  # [P, Tp] int32, left-padded
    attention_mask: np.ndarray  # [P, Tp] int32, 1 on real tokens
    step: int = 0  # learner step that asked for it
    index: int = 0  # position of the first prompt in the prompt stream (resume)

    def __len__(self) -> int:
        return len(self.prompt_ids)


@dataclasses.dataclass
class CandidateBatch:
    """M sampled responses per prompt, with the frozen pass (reference log-probs, features)."""

    prompts: PromptBatch
    tokens: np.ndarray  # [P, M, N] int32, right-padded responses
    mask: np.ndarray  # [P, M, N] int32, 1 on response tokens (EOS included)
    policy_logprobs: np.ndarray  # [P, M, N] float32, log pi(y_t | ...) at temperature 1
    ref_logprobs: np.ndarray  # [P, M, N] float32, log pi_ref(y_t | ...)
    features: np.ndarray  # [P, M, F] float32, encoder features phi(x, y)
    texts: list[list[str]]  # [P][M] decoded responses
    version: int  # policy weights version the candidates were sampled with
    # [P, M] bool, True where the candidate was sampled from the reference instead of the
    # policy (strategy xpo); None at construction = every candidate from the policy
    from_reference: np.ndarray | None = None

    def __post_init__(self):
        if self.from_reference is None:
            self.from_reference = np.zeros(self.tokens.shape[:2], bool)
        self.from_reference = np.asarray(self.from_reference, bool)
        if self.from_reference.shape != self.tokens.shape[:2]:
            raise ValueError(f"CandidateBatch: from_reference has shape {self.from_reference.shape}, "
                             f"expected [P, M] = {self.tokens.shape[:2]}")


@dataclasses.dataclass
class PairBatch:
    """The pair chosen for each prompt: indices into the candidates, plus diagnostics."""

    candidates: CandidateBatch
    pairs: np.ndarray  # [P, 2] int32 indices (a, b) into M
    identical: np.ndarray  # [P] bool, a and b are the same response (learner masks them)
    synthetic: np.ndarray  # [P] bool, labelled by the ERM (never sent to the oracle)
    strategy: str
    diagnostics: dict[str, float] = dataclasses.field(default_factory=dict)
    pair_ids: list[str] = dataclasses.field(default_factory=list)  # unique id per pair (ledger)
    synthetic_prob: np.ndarray | None = None  # [P] ERM P(a > b) for synthetic pairs

    @property
    def version(self) -> int:
        return self.candidates.version


@dataclasses.dataclass
class LabeledBatch:
    """Oracle (or ERM) answers for a PairBatch."""

    pairs: PairBatch
    prob_a: np.ndarray  # [P] float32, P(a > b)
    label: np.ndarray  # [P] int8, 1 when a was preferred (sampled from prob_a)
    metadata: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # per pair
    from_ledger: np.ndarray | None = None  # [P] bool, reused from the ledger (not paid again)

    @property
    def queries(self) -> int:
        """Oracle calls this batch paid for (invariant 1: synthetic and reused labels excluded)."""
        paid = ~self.pairs.synthetic
        if self.from_ledger is not None:
            paid &= ~self.from_ledger
        return int(paid.sum())

"""The records that flow through one step of the loop (DESIGN.md, "Records").

PromptBatch -> CandidateBatch -> PairBatch -> LabeledBatch. Arrays are NumPy on the host (they
cross Ray process boundaries); the learner moves them to its devices. Shapes use P prompts,
M candidates per prompt, Tp prompt tokens, N response tokens, F feature width. The operations on
records live on them: `PromptBatch.slice` (a generator's shard), `PairBatch.take` (rows kept),
`PairBatch.concat` (the generators' shards joined); `pair_id` names a pair in the ledger.
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

    def slice(self, lo: int, hi: int) -> "PromptBatch":
        """Prompts [lo, hi) (a generator's shard); `index` stays their stream position."""
        return PromptBatch(prompt_ids=self.prompt_ids[lo:hi], texts=self.texts[lo:hi],
                           input_ids=self.input_ids[lo:hi], attention_mask=self.attention_mask[lo:hi],
                           step=self.step, index=self.index + lo)

    def take(self, rows: np.ndarray) -> "PromptBatch":
        rows = np.asarray(rows, int)
        return dataclasses.replace(self, prompt_ids=[self.prompt_ids[i] for i in rows],
                                   texts=[self.texts[i] for i in rows], input_ids=self.input_ids[rows],
                                   attention_mask=self.attention_mask[rows])


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

    def take(self, rows: np.ndarray) -> "CandidateBatch":
        rows = np.asarray(rows, int)
        return dataclasses.replace(
            self, prompts=self.prompts.take(rows), tokens=self.tokens[rows], mask=self.mask[rows],
            policy_logprobs=self.policy_logprobs[rows], ref_logprobs=self.ref_logprobs[rows],
            features=self.features[rows], texts=[self.texts[i] for i in rows],
            from_reference=self.from_reference[rows])


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
    # [P] the ensemble's P(a > b) for every row's pair as chosen (mean over members), before any
    # label: on the pairs the oracle answers it is an online check of the ensemble (a diagnostic)
    erm_prob: np.ndarray | None = None

    @property
    def version(self) -> int:
        return self.candidates.version

    def take(self, rows: np.ndarray) -> "PairBatch":
        """The batch restricted to `rows` (the budget cut at the last step)."""
        rows = np.asarray(rows, int)
        return dataclasses.replace(
            self, candidates=self.candidates.take(rows), pairs=self.pairs[rows],
            identical=self.identical[rows], synthetic=self.synthetic[rows],
            pair_ids=[self.pair_ids[i] for i in rows],
            synthetic_prob=None if self.synthetic_prob is None else self.synthetic_prob[rows],
            erm_prob=None if self.erm_prob is None else self.erm_prob[rows])

    @staticmethod
    def concat(parts: list["PairBatch"], pad_id: int = 0) -> "PairBatch":
        """Join the generators' PairBatches (in shard order) into one batch for the learner."""
        return _concat_pairs(parts, pad_id)


@dataclasses.dataclass
class LabeledBatch:
    """Oracle (or ERM) answers for a PairBatch."""

    pairs: PairBatch
    prob_a: np.ndarray  # [P] float32, P(a > b)
    label: np.ndarray  # [P] int8, 1 when a was preferred (sampled from prob_a)
    metadata: list[dict[str, Any]] = dataclasses.field(default_factory=list)  # per pair
    from_ledger: np.ndarray | None = None  # [P] bool, reused from the ledger (not paid again)

    @property
    def erm_labelled(self) -> np.ndarray:
        """[P] bool: the rows the ERM labelled (synthetic rows dropped as unsure, P = NaN, are not)."""
        return np.asarray(self.pairs.synthetic, bool) & ~np.isnan(np.asarray(self.prob_a, np.float32))

    @property
    def synthetic_labels(self) -> int:
        """ERM labels this batch holds."""
        return int(self.erm_labelled.sum())

    @property
    def queries(self) -> int:
        """Oracle calls this batch paid for (invariant 1: synthetic and reused labels excluded)."""
        paid = ~self.pairs.synthetic
        if self.from_ledger is not None:
            paid &= ~self.from_ledger
        return int(paid.sum())


def pair_id(step: int, index: int) -> str:
    """Stable id of the pair asked for prompt-stream position `index` at `step`."""
    return f"s{int(step)}-i{int(index)}"


def _pad_cat(arrays: list[np.ndarray], axis: int, fill=0) -> np.ndarray:
    """Concatenate on axis 0 after right-padding `axis` to the longest."""
    width = max(a.shape[axis] for a in arrays)
    out = []
    for a in arrays:
        pad = [(0, 0)] * a.ndim
        pad[axis] = (0, width - a.shape[axis])
        out.append(np.pad(a, pad, constant_values=fill))
    return np.concatenate(out, axis=0)


def _left_pad_cat(arrays: list[np.ndarray], fill=0) -> np.ndarray:
    width = max(a.shape[1] for a in arrays)
    return np.concatenate([np.pad(a, [(0, 0), (width - a.shape[1], 0)], constant_values=fill)
                           for a in arrays], axis=0)


def _concat_pairs(parts: list[PairBatch], pad_id: int = 0) -> PairBatch:
    if len(parts) == 1:
        return parts[0]
    versions = {p.version for p in parts}
    if len(versions) != 1:
        raise ValueError(f"PairBatch.concat: shards sampled with different versions {sorted(versions)}")
    cs = [p.candidates for p in parts]
    prompts = PromptBatch(
        prompt_ids=[x for c in cs for x in c.prompts.prompt_ids],
        texts=[x for c in cs for x in c.prompts.texts],
        input_ids=_left_pad_cat([c.prompts.input_ids for c in cs], fill=pad_id),
        attention_mask=_left_pad_cat([c.prompts.attention_mask for c in cs]),
        step=cs[0].prompts.step, index=cs[0].prompts.index)
    cand = CandidateBatch(
        prompts=prompts,
        tokens=_pad_cat([c.tokens for c in cs], 2, fill=pad_id),
        mask=_pad_cat([c.mask for c in cs], 2),
        policy_logprobs=_pad_cat([c.policy_logprobs for c in cs], 2),
        ref_logprobs=_pad_cat([c.ref_logprobs for c in cs], 2),
        features=np.concatenate([c.features for c in cs], 0),
        texts=[x for c in cs for x in c.texts],
        version=cs[0].version,
        from_reference=np.concatenate([c.from_reference for c in cs], 0))
    diag = {}
    for k in parts[0].diagnostics:
        vals = [p.diagnostics[k] for p in parts if k in p.diagnostics]
        diag[k] = float(max(vals)) if k.startswith("time_") else float(np.mean(vals))
    def probs(name: str) -> np.ndarray:  # a [P] probability column; NaN where a shard has none
        return np.concatenate([np.full(len(p.pairs), np.nan, np.float32) if getattr(p, name) is None
                               else getattr(p, name) for p in parts]).astype(np.float32)

    return PairBatch(candidates=cand, pairs=np.concatenate([p.pairs for p in parts]),
                     identical=np.concatenate([p.identical for p in parts]),
                     synthetic=np.concatenate([p.synthetic for p in parts]),
                     strategy=parts[0].strategy, diagnostics=diag,
                     pair_ids=[x for p in parts for x in p.pair_ids],
                     synthetic_prob=probs("synthetic_prob"), erm_prob=probs("erm_prob"))

"""The oracle interface: P(a > b) for pairs of responses, and binary labels drawn from it.

Every oracle answers `label(prompts, responses_a, responses_b) -> OracleResult` with
`prob_a` [N] (probability that response a is preferred) and one metadata dict per pair
(at least `latency_s` and `retries`). A pair the oracle did not answer (a human skipped it)
has `prob_a = nan` and `metadata["skipped"] = True`; an oracle never invents a label for a
failed call: it raises `OracleError` instead.

`sample_labels` turns probabilities into binary labels: Bradley-Terry sampling
(label ~ Bernoulli(prob_a)) or threshold (label = prob_a > 1/2, exact ties broken by a fair
coin), then each label is flipped independently with probability `flip` (label noise).

Oracles are built from plain config dicts (`duel.oracles.kinds.make_oracle`) so that a Ray actor can construct
its own copy; they hold only plain values until first use, and pickle without loaded models
or secrets.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import numpy as np


class OracleError(RuntimeError):
    """An oracle could not produce an answer (after its retry budget); never a made-up label.

    `attempts`: the requests already sent for that answer (an HTTP oracle retries a request
    itself, duel.oracles.transport); the oracle pool counts them against the same budget.
    `retry`: False when asking again cannot help (an HTTP 4xx: a bad request or key)."""

    def __init__(self, message: str, attempts: int = 1, retry: bool = True):
        super().__init__(message)
        self.attempts, self.retry = int(attempts), bool(retry)


@dataclasses.dataclass
class OracleResult:
    prob_a: np.ndarray  # [N] float32, P(a > b); nan where the pair was skipped
    metadata: list[dict[str, Any]]  # one dict per pair: latency_s, retries, ...
    stop: bool = False  # the oracle asked the run to stop (a human chose quit)

    @property
    def answered(self) -> np.ndarray:
        """[N] bool, pairs with a usable probability (not skipped)."""
        return ~np.isnan(self.prob_a)

    def __len__(self) -> int:
        return len(self.prob_a)


class Oracle:
    """Base class. Subclasses implement `_label` on validated, equal-length lists of strings."""

    kind: str = "base"

    def label(
        self, prompts: Sequence[str], responses_a: Sequence[str], responses_b: Sequence[str]
    ) -> OracleResult:
        prompts, responses_a, responses_b = list(prompts), list(responses_a), list(responses_b)
        n = len(prompts)
        if len(responses_a) != n or len(responses_b) != n:
            raise ValueError(
                f"{self.kind} oracle: prompts, responses_a and responses_b must have equal "
                f"lengths; got {n}, {len(responses_a)}, {len(responses_b)}"
            )
        for name, seq in (("prompts", prompts), ("responses_a", responses_a), ("responses_b", responses_b)):
            for i, s in enumerate(seq):
                if not isinstance(s, str):
                    raise TypeError(f"{self.kind} oracle: {name}[{i}] must be str, got {type(s).__name__}")
        if n == 0:
            return OracleResult(np.zeros((0,), np.float32), [])
        res = self._label(prompts, responses_a, responses_b)
        prob = np.asarray(res.prob_a, dtype=np.float32)
        if prob.shape != (n,) or len(res.metadata) != n:
            raise OracleError(
                f"{self.kind} oracle returned prob_a of shape {prob.shape} and {len(res.metadata)} "
                f"metadata entries for {n} pairs"
            )
        ok = ~np.isnan(prob)
        if np.any((prob[ok] < 0) | (prob[ok] > 1)):
            raise OracleError(f"{self.kind} oracle returned probabilities outside [0, 1]: {prob}")
        res.prob_a = prob
        return res

    def _label(self, prompts: list[str], a: list[str], b: list[str]) -> OracleResult:
        raise NotImplementedError

    def close(self) -> None:
        """Release resources (connections, models). Safe to call twice."""


def bt_prob(reward_a, reward_b, tau: float = 1.0) -> np.ndarray:
    """Bradley-Terry: P(a > b) = sigmoid((r_a - r_b) / tau); tau = 0 gives 1, 0 or 1/2 on ties."""
    d = np.asarray(reward_a, np.float64) - np.asarray(reward_b, np.float64)
    if tau < 0:
        raise ValueError(f"tau must be >= 0, got {tau}")
    if tau == 0:
        return np.where(d > 0, 1.0, np.where(d < 0, 0.0, 0.5)).astype(np.float32)
    z = d / tau
    return (0.5 * (1.0 + np.tanh(0.5 * z))).astype(np.float32)  # stable sigmoid


def sample_labels(prob_a, rng, mode: str = "bt", flip: float = 0.0) -> np.ndarray:
    """Binary labels (int8, 1 = a preferred) from P(a > b).

    mode "bt": label ~ Bernoulli(prob_a). mode "threshold": label = prob_a > 1/2, exact ties
    (prob_a == 1/2) by a fair coin. Then each label flips with probability `flip`.
    `rng` is a numpy Generator or an int seed. Skipped pairs (nan) are an error: drop them first.
    """
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(rng)
    p = np.asarray(prob_a, dtype=np.float64)
    if np.any(np.isnan(p)):
        raise ValueError("sample_labels: prob_a contains nan (skipped pairs); drop them first")
    if not 0.0 <= flip <= 1.0:
        raise ValueError(f"sample_labels: flip must be in [0, 1], got {flip}")
    u = rng.random(p.shape)
    if mode == "bt":
        label = u < p
    elif mode == "threshold":
        label = np.where(p == 0.5, u < 0.5, p > 0.5)
    else:
        raise ValueError(f"sample_labels: mode must be 'bt' or 'threshold', got {mode!r}")
    if flip > 0:
        label = label ^ (rng.random(p.shape) < flip)
    return label.astype(np.int8)


# Keys a run config may pass to any oracle: label sampling happens outside the oracle, and
# oracles without network calls have no use for retry settings; call_size is read by the oracle
# actor (actors/oracle.py: pairs per call, streamed back call by call).
GENERIC_KEYS = {"kind", "label_mode", "flip", "max_retries", "timeout_s", "call_size"}


def check_keys(cfg: dict, allowed: set[str], where: str) -> None:
    unknown = set(cfg) - allowed - GENERIC_KEYS
    if unknown:
        raise ValueError(f"{where} config: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}")


def finite_float(x, what: str) -> float:
    v = float(x)
    if not math.isfinite(v):
        raise OracleError(f"{what}: expected a finite number, got {x!r}")
    return v

"""Oracles: who says which of two responses is better (DESIGN.md, "One step").

    oracle = make_oracle({"kind": "rule", "reward": "arithmetic", "tau": 0.5})
    res = oracle.label(prompts, responses_a, responses_b)   # res.prob_a [N], res.metadata
    labels = sample_labels(res.prob_a, rng, mode="bt", flip=0.0)

Kinds: rule / task (duel.oracles.rule), reward_model, remote (HTTP JSON), judge (OpenAI-compatible
chat completions, both orders), human (terminal). See each module's docstring for its config.
"""

from duel.oracles.base import (
    GENERIC_KEYS,
    Oracle,
    OracleError,
    OracleResult,
    bt_prob,
    make_oracle,
    register_oracle,
    sample_labels,
)
from duel.oracles.rule import register_reward, resolve_reward

__all__ = [
    "GENERIC_KEYS",
    "Oracle",
    "OracleError",
    "OracleResult",
    "bt_prob",
    "make_oracle",
    "register_oracle",
    "register_reward",
    "resolve_reward",
    "sample_labels",
]

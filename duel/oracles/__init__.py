"""Oracles: who says which of two responses is better (DESIGN.md, "One step").

    oracle = make_oracle({"kind": "task", "tau": 0.5}, task=get_task("arithmetic"))
    res = oracle.label(prompts, responses_a, responses_b)   # res.prob_a [N], res.metadata
    labels = sample_labels(res.prob_a, rng, mode="bt", flip=0.0)

Kinds: rule / task (duel.oracles.rule), reward_model, remote (HTTP JSON), judge (OpenAI-compatible
chat completions, both orders), human (terminal): the table `duel.oracles.kinds.ORACLES`. See each
module's docstring for its config. Oracles never import tasks: kind "task" takes the task object.
"""

from duel.oracles.base import (
    GENERIC_KEYS,
    Oracle,
    OracleError,
    OracleResult,
    bt_prob,
    sample_labels,
)
from duel.oracles.kinds import ORACLES, make_oracle
from duel.oracles.rule import register_reward, resolve_reward

__all__ = [
    "GENERIC_KEYS",
    "ORACLES",
    "Oracle",
    "OracleError",
    "OracleResult",
    "bt_prob",
    "make_oracle",
    "register_reward",
    "resolve_reward",
    "sample_labels",
]

"""The oracle kinds: one explicit table from a config's `kind` to its class, and `make_oracle`.

A new kind is a class here (an `Oracle` with `from_config(cfg, **kwargs)`); nothing registers
itself by being imported.
"""

from __future__ import annotations

from duel.oracles.base import Oracle
from duel.oracles.human import HumanOracle
from duel.oracles.judge import JudgeOracle
from duel.oracles.remote import RemoteOracle
from duel.oracles.reward_model import RewardModelOracle
from duel.oracles.rule import RuleOracle

ORACLES: dict[str, type[Oracle]] = {
    "rule": RuleOracle,
    "reward_model": RewardModelOracle,
    "remote": RemoteOracle,
    "judge": JudgeOracle,
    "human": HumanOracle,
}


def make_oracle(cfg: dict, task=None, **kwargs) -> Oracle:
    """Build an oracle from a plain config dict: {"kind": "rule" | "task" | "reward_model" |
    "remote" | "judge" | "human", ...kind-specific keys}. Kind "task" is the rule oracle on
    `task.gold_reward` (any object with that method; this module never imports tasks), and a
    rule oracle without a "reward" key uses it too. Keys in GENERIC_KEYS are accepted by every
    kind; kwargs go to the constructor (e.g. streams for "human")."""
    if not isinstance(cfg, dict):
        raise TypeError(f"oracle config must be a dict, got {type(cfg).__name__}")
    kind = cfg.get("kind")
    if kind == "task":  # the task's gold reward through the rule oracle
        if task is None:
            raise ValueError("oracle config: kind 'task' needs a task (make_oracle(cfg, task=...))")
        cfg, kind = {**cfg, "kind": "rule"}, "rule"
    if kind not in ORACLES:
        raise ValueError(f"oracle config: key 'kind' must be one of {sorted(ORACLES)}, got {kind!r}")
    if kind == "rule" and task is not None:
        kwargs["reward_fn"] = task.gold_reward
    return ORACLES[kind].from_config(cfg, **kwargs)

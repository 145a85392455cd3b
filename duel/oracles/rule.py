"""Rule oracle: a Python reward function r(prompt, response) -> float, P(a > b) = sigmoid((r_a - r_b)/tau).

Config: {"kind": "rule", "reward": NAME | "module.path:function", "tau": 1.0}.
NAME is a function registered with `@register_reward(NAME)`; with no "reward" key the task's
gold reward is used (`make_oracle(cfg, task=task)`). tau is in the reward's own units: labels
are only as sure as the reward gap allows (a reward in [0, 1] with tau = 1 never answers above
sigmoid(1) = 0.73). tau = 0 gives a deterministic oracle (1, 0, or 1/2 on exact ties). The oracle stores only names, so it pickles into Ray actors and
re-resolves the function there.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from duel.imports import import_object
from duel.oracles.base import Oracle, OracleResult, bt_prob, check_keys, finite_float, register_oracle

RewardFn = Callable[[str, str], float]
_REWARDS: dict[str, RewardFn] = {}


def register_reward(name: str):
    """Decorator: make `fn(prompt, response) -> float` available to the rule oracle as NAME."""

    def deco(fn):
        _REWARDS[name] = fn
        return fn

    return deco


def resolve_reward(spec: str) -> RewardFn:
    """A registered name, or "module.path:function"."""
    if spec not in _REWARDS and ":" not in spec:
        import duel.tasks.arithmetic  # noqa: F401  (the shipped tasks register their gold rewards)
        import duel.tasks.style  # noqa: F401
        import duel.tasks.sort  # noqa: F401
    if spec in _REWARDS:
        return _REWARDS[spec]
    if ":" in spec:
        fn = import_object(spec, f"rule oracle: reward {spec!r}")
        if not callable(fn):
            raise ValueError(f"rule oracle: reward {spec!r} is not callable")
        return fn
    raise ValueError(
        f"rule oracle: key 'reward' must be a registered name {sorted(_REWARDS)} or "
        f"'module.path:function', got {spec!r}"
    )


@register_oracle("rule")
class RuleOracle(Oracle):
    def __init__(self, reward: str | None = None, tau: float = 1.0, task: str | None = None):
        if reward is None and task is None:
            raise ValueError("rule oracle config: give key 'reward' (or build it with a task)")
        if tau < 0:
            raise ValueError(f"rule oracle config: key 'tau' must be >= 0, got {tau}")
        self.reward, self.task, self.tau = reward, task, float(tau)
        self._fn: RewardFn | None = None

    @classmethod
    def from_config(cls, cfg, task=None, **kwargs):
        check_keys(cfg, {"reward", "tau"}, "rule oracle")
        task_spec = None
        if task is not None:
            task_spec = getattr(task, "spec", None) or task.name
        return cls(reward=cfg.get("reward"), tau=cfg.get("tau", 1.0), task=task_spec, **kwargs)

    @property
    def fn(self) -> RewardFn:
        if self._fn is None:
            if self.reward is not None:
                self._fn = resolve_reward(self.reward)
            else:
                from duel.tasks import get_task

                self._fn = get_task(self.task).gold_reward
        return self._fn

    def rewards(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        fn = self.fn
        return np.array(
            [finite_float(fn(p, r), f"reward {self.reward or self.task!r}") for p, r in zip(prompts, responses)],
            np.float64,
        )

    def _label(self, prompts, a, b):
        t0 = time.perf_counter()
        ra, rb = self.rewards(prompts, a), self.rewards(prompts, b)
        prob = bt_prob(ra, rb, self.tau)
        dt = (time.perf_counter() - t0) / len(prompts)
        meta = [
            {"latency_s": dt, "retries": 0, "reward_a": float(x), "reward_b": float(y)}
            for x, y in zip(ra, rb)
        ]
        return OracleResult(prob, meta)

    def __getstate__(self):
        return {**self.__dict__, "_fn": None}

    def __repr__(self):
        return f"RuleOracle(reward={self.reward!r}, task={self.task!r}, tau={self.tau})"

"""Rule oracle: a Python reward function r(prompt, response) -> float, P(a > b) = sigmoid((r_a - r_b)/tau).

Config: {"kind": "rule", "reward": NAME | "module.path:function", "tau": 1.0}, or
{"kind": "task", "tau": 1.0}: the run's task's gold reward (`make_oracle(cfg, task=task)` hands
`task.gold_reward` to this oracle; the oracle never knows tasks). NAME is a function registered
with `@register_reward(NAME)`. tau is in the reward's own units: labels are only as sure as the
reward gap allows (a reward in [0, 1] with tau = 1 never answers above sigmoid(1) = 0.73). tau = 0
gives a deterministic oracle (1, 0, or 1/2 on exact ties). Built from a name, the oracle pickles
the name and re-resolves the function after unpickling.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from duel.imports import import_object
from duel.oracles.base import Oracle, OracleResult, bt_prob, check_keys, finite_float

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
    if spec in _REWARDS:
        return _REWARDS[spec]
    if ":" in spec:
        fn = import_object(spec, f"rule oracle: reward {spec!r}")
        if not callable(fn):
            raise ValueError(f"rule oracle: reward {spec!r} is not callable")
        return fn
    raise ValueError(
        f"rule oracle: key 'reward' must be a registered name {sorted(_REWARDS)} or "
        f"'module.path:function', got {spec!r} (a task's gold reward: oracle kind 'task')"
    )


class RuleOracle(Oracle):
    kind = "rule"

    def __init__(self, reward: str | RewardFn, tau: float = 1.0):
        """reward: a registered name, "module.path:function", or the function itself."""
        if tau < 0:
            raise ValueError(f"rule oracle config: key 'tau' must be >= 0, got {tau}")
        self.tau = float(tau)
        if isinstance(reward, str):
            self.reward, self._fn = reward, None
        elif callable(reward):
            self.reward, self._fn = None, reward
        else:
            raise ValueError(f"rule oracle config: key 'reward' must be a name or a function, got {reward!r}")

    @classmethod
    def from_config(cls, cfg, reward_fn: RewardFn | None = None, **kwargs):
        """cfg's "reward" wins over `reward_fn` (the task's gold reward for kind 'task')."""
        check_keys(cfg, {"reward", "tau"}, "rule oracle")
        reward = cfg.get("reward", reward_fn)
        if reward is None:
            raise ValueError("rule oracle config: give key 'reward' (or use oracle kind 'task')")
        return cls(reward, tau=cfg.get("tau", 1.0), **kwargs)

    @property
    def name(self) -> str:
        return self.reward or getattr(self._fn, "__qualname__", repr(self._fn))

    @property
    def fn(self) -> RewardFn:
        if self._fn is None:
            self._fn = resolve_reward(self.reward)
        return self._fn

    def rewards(self, prompts: list[str], responses: list[str]) -> np.ndarray:
        fn = self.fn
        return np.array(
            [finite_float(fn(p, r), f"reward {self.name!r}") for p, r in zip(prompts, responses)],
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
        # built from a name: the name travels and the function is re-resolved after unpickling
        return {**self.__dict__, "_fn": None} if self.reward is not None else dict(self.__dict__)

    def __repr__(self):
        return f"RuleOracle(reward={self.name!r}, tau={self.tau})"

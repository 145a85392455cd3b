"""Oracle actors: a pool of Ray actors around `duel.oracles`, with bounded concurrency.

One query is one pair sent to the oracle (invariant 1): each actor counts the pairs it labelled,
and the pool counts what it paid for. Failures surface as `OracleUnavailable`, never as labels;
a reply of the wrong shape or outside [0, 1] is an error too (invariant 5).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import numpy as np
import ray


class OracleUnavailable(RuntimeError):
    """The oracle kept failing past its retry budget; the run must checkpoint and stop."""


def check_reply(prob_a: Any, n: int) -> np.ndarray:
    """Validate an oracle reply: n probabilities in [0, 1] (nan = a pair the oracle skipped)."""
    prob = np.asarray(prob_a, dtype=np.float32)
    if prob.shape != (n,):
        raise ValueError(f"oracle reply: expected prob_a of shape ({n},), got {prob.shape}")
    ok = prob[~np.isnan(prob)]
    if np.any(np.isinf(ok)) or np.any((ok < 0) | (ok > 1)):
        raise ValueError(f"oracle reply: expected probabilities in [0, 1], got {prob.tolist()}")
    return prob


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class OracleActor:
    """One oracle (reward model, rule, remote judge...) behind a Ray actor."""

    def __init__(self, oracle_cfg: dict, task_name: str | None = None):
        from duel.oracles import make_oracle

        task = None
        if task_name:
            from duel.tasks import get_task

            task = get_task(task_name)
        self.oracle = make_oracle(dict(oracle_cfg), task=task)
        self.calls = 0

    def label(self, prompts: list[str], a: list[str], b: list[str]):
        res = self.oracle.label(list(prompts), list(a), list(b))
        prob = check_reply(res.prob_a, len(prompts))
        meta = list(getattr(res, "metadata", None) or [{} for _ in prompts])
        if len(meta) != len(prompts):
            raise ValueError(f"oracle reply: expected {len(prompts)} metadata rows, got {len(meta)}")
        self.calls += len(prompts)
        return prob, meta, bool(getattr(res, "stop", False))

    def num_calls(self) -> int:
        return self.calls


def oracle_name(oracle_cfg: dict) -> str:
    """How messages name an oracle: its kind and what identifies it (reward, url, model...)."""
    kind = oracle_cfg.get("kind", "?")
    for key in ("reward", "url", "model", "path"):
        if oracle_cfg.get(key):
            return f"{kind} oracle ({key} {oracle_cfg[key]!r})"
    return f"{kind} oracle"


def _cause(e: BaseException) -> str:
    """The oracle's own error, without Ray's remote traceback."""
    cause = getattr(e, "cause", None)  # RayTaskError: the exception raised in the actor
    if isinstance(e, ray.exceptions.RayActorError):
        return f"the oracle actor died ({type(e).__name__})"
    if isinstance(cause, BaseException):
        e = cause
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[-1] if text else ''}"[:500]


MAX_ACTOR_RESTARTS = 8  # per chunk: an actor that keeps dying stops the run


class OraclePool:
    """Label pairs with a pool of `OracleActor`s: chunks round-robin, at most
    `max_concurrency` chunks in flight, each chunk retried up to `max_retries` times."""

    def __init__(self, actors: list, *, max_concurrency: int = 4, chunk_size: int = 16,
                 max_retries: int = 3, backoff_s: float = 0.5, name: str = "oracle"):
        if not actors:
            raise ValueError("OraclePool needs at least one oracle actor")
        self.actors = list(actors)
        self.max_concurrency = max(1, int(max_concurrency))
        self.chunk_size = max(1, int(chunk_size))
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.name = name
        self.queries = 0  # pairs answered (paid) through this pool
        self.stop_requested = False
        self._next = 0

    def _submit(self, chunk):
        actor = self.actors[self._next % len(self.actors)]
        self._next += 1
        lo, hi, p, a, b = chunk
        return actor.label.remote(p[lo:hi], a[lo:hi], b[lo:hi])

    def label(self, prompts: list[str], a: list[str], b: list[str]):
        """-> (prob_a [N] float32, metadata list[dict] with latency_s and retries).

        `self.stop_requested` turns True when an oracle asked the run to stop (a human quit)."""
        n = len(prompts)
        prob = np.zeros(n, np.float32)
        meta: list[dict] = [{} for _ in range(n)]
        if n == 0:
            return prob, meta
        todo = deque((lo, min(lo + self.chunk_size, n), prompts, a, b)
                     for lo in range(0, n, self.chunk_size))
        tries: dict[int, int] = {}
        restarts: dict[int, int] = {}
        inflight: dict[Any, tuple] = {}
        started: dict[Any, float] = {}
        while todo or inflight:
            while todo and len(inflight) < self.max_concurrency:
                chunk = todo.popleft()
                ref = self._submit(chunk)
                inflight[ref] = chunk
                started[ref] = time.perf_counter()
            done, _ = ray.wait(list(inflight), num_returns=1)
            ref = done[0]
            chunk = inflight.pop(ref)
            t0 = started.pop(ref)
            lo, hi = chunk[0], chunk[1]
            try:
                p, m, stop = ray.get(ref)
            except ray.exceptions.RayActorError as e:  # the actor died or is restarting
                # Ray restarts it (max_restarts): not the oracle's fault, so not its retry budget
                restarts[lo] = restarts.get(lo, 0) + 1
                if restarts[lo] > MAX_ACTOR_RESTARTS:
                    for r in inflight:
                        ray.cancel(r)
                    raise OracleUnavailable(
                        f"{self.name}: its actor died {restarts[lo]} times on pairs {lo}..{hi - 1}; "
                        f"last error: {_cause(e)}") from e
                time.sleep(self.backoff_s * 2 ** min(restarts[lo] - 1, 4))
                todo.append(chunk)
                continue
            except Exception as e:  # oracle raised, bad reply
                tries[lo] = tries.get(lo, 0) + 1
                if tries[lo] > self.max_retries:
                    for r in inflight:
                        ray.cancel(r)
                    raise OracleUnavailable(
                        f"{self.name} failed {tries[lo]} times in a row on pairs {lo}..{hi - 1}, "
                        f"past its retry budget (oracle.max_retries = {self.max_retries}); last "
                        f"error: {_cause(e)}") from e
                time.sleep(self.backoff_s * 2 ** (tries[lo] - 1))
                todo.append(chunk)
                continue
            latency = time.perf_counter() - t0
            self.stop_requested |= stop
            prob[lo:hi] = p
            for i, row in enumerate(m):
                meta[lo + i] = {**dict(row), "latency_s": float(row.get("latency_s", latency)),
                                "retries": tries.get(lo, 0)}
            self.queries += hi - lo
        return prob, meta

    def num_calls(self) -> int:
        """Pairs labelled, summed over the actors (restarted actors start again from 0)."""
        return int(sum(ray.get([x.num_calls.remote() for x in self.actors])))

"""Oracle actors: a pool of Ray actors around `duel.oracles`, with bounded concurrency.

One query is one pair sent to the oracle (invariant 1): each actor counts the pairs it labelled,
and the pool counts what it paid for. Failures surface as `OracleUnavailable`, never as labels;
a reply of the wrong shape or outside [0, 1] is an error too (invariant 5).

Answers stream back one oracle call (`call_size` pairs) at a time: `OracleActor.label` is a Ray
streaming generator with backpressure 1, so the actor starts its next oracle call only once the
driver holds the previous answer. An actor that dies mid-chunk therefore loses only the answers
of the call in flight; every answer received is kept and never asked again (invariant 2). A
chunk that is a single call goes as a plain actor call (`label_once`; a stream costs ~1 ms more).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import ray

from duel.oracles.base import OracleError


@dataclasses.dataclass(frozen=True)
class OracleSpec:
    """What an oracle actor needs of the run config, typed and frozen (built once by the loop).

    kind and options are the config's `oracle.kind` / `oracle.options` (duel.oracles.make_oracle
    reads them as one dict); task names the run's task for kind "task" (its gold reward);
    max_retries is `oracle.max_retries`, the one retry budget: an HTTP oracle spends it on a
    request and the pool (`OraclePool`, same budget) counts what it spent."""

    kind: str
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    task: str | None = None
    max_retries: int = 3

    @classmethod
    def from_config(cls, cfg) -> "OracleSpec":
        return cls(kind=cfg.oracle.kind, options=dict(cfg.oracle.options), task=cfg.task,
                   max_retries=cfg.oracle.max_retries)

    def oracle_config(self) -> dict:
        """The dict duel.oracles.make_oracle builds the oracle from."""
        return {"kind": self.kind, **self.options, "max_retries": self.max_retries}

    @property
    def name(self) -> str:
        return oracle_name(self.oracle_config())


class OracleUnavailable(RuntimeError):
    """The oracle kept failing past its retry budget; the run must checkpoint and stop.

    `OraclePool.label` sets `answered` [N] bool, `prob_a` and `metadata`: the answers it had
    received (paid) before it gave up; `learner.labeling.label_pairs` adds `labeled`, those
    rows as a LabeledBatch for the ledger."""

    answered: np.ndarray | None = None
    prob_a: np.ndarray | None = None
    metadata: list[dict] | None = None
    labeled: Any = None
    error: BaseException | None = None  # what the oracle itself raised last (None: its actor died)


def check_reply(prob_a: Any, n: int) -> np.ndarray:
    """Validate an oracle reply: n probabilities in [0, 1] (nan = a pair the oracle skipped)."""
    prob = np.asarray(prob_a, dtype=np.float32)
    if prob.shape != (n,):
        raise ValueError(f"oracle reply: expected prob_a of shape ({n},), got {prob.shape}")
    ok = prob[~np.isnan(prob)]
    if np.any(np.isinf(ok)) or np.any((ok < 0) | (ok > 1)):
        raise ValueError(f"oracle reply: expected probabilities in [0, 1], got {prob.tolist()}")
    return prob


def call_size(oracle, configured=None) -> int:
    """Pairs per oracle call, each call's answers streamed back as soon as it returns (0 = the
    whole chunk in one call).

    `oracle.options.call_size` when set. Otherwise what the oracle is paid for at once: one
    request of a remote oracle or one forward pass of a reward model (`batch_size`), a judge's
    parallel requests (`concurrency`), one pair for a human. A rule oracle is simulated (nothing
    is paid; a call costs microseconds, a streamed answer ~1 ms): its whole chunk is one call."""
    if configured is not None:
        if isinstance(configured, bool) or not isinstance(configured, int) or configured < 0:
            raise ValueError("oracle config: key 'call_size' must be an integer >= 0 (0 = the "
                             f"whole chunk in one call), got {configured!r}")
        return configured
    if getattr(oracle, "kind", None) == "rule":
        return 0
    for attr in ("batch_size", "concurrency"):
        n = getattr(oracle, attr, None)
        if isinstance(n, int) and n >= 1:
            return n
    return 1


def skipped_rows(n: int) -> tuple[np.ndarray, list[dict]]:
    """The answer rows of pairs never shown because the oracle asked to stop (a human quit)."""
    meta = [{"latency_s": 0.0, "retries": 0, "skipped": True, "quit": True} for _ in range(n)]
    return np.full(n, np.nan, np.float32), meta


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class OracleActor:
    """One oracle (reward model, rule, remote judge...) behind a Ray actor."""

    def __init__(self, spec: OracleSpec):
        from duel.oracles import make_oracle

        if not isinstance(spec, OracleSpec):
            raise TypeError(f"OracleActor: spec must be an OracleSpec, got {type(spec).__name__}")
        task = None
        if spec.task:
            from duel.tasks import get_task

            task = get_task(spec.task)
        self.oracle = make_oracle(spec.oracle_config(), task=task)
        self.call_size = call_size(self.oracle, spec.options.get("call_size"))
        self.calls = 0

    def call(self, prompts: list[str], a: list[str], b: list[str]):
        """One oracle call -> (prob_a, metadata with latency_s, stop)."""
        n = len(prompts)
        t0 = time.perf_counter()
        res = self.oracle.label(list(prompts), list(a), list(b))
        prob = check_reply(res.prob_a, n)
        meta = list(getattr(res, "metadata", None) or [{} for _ in range(n)])
        if len(meta) != n:
            raise ValueError(f"oracle reply: expected {n} metadata rows, got {len(meta)}")
        latency = (time.perf_counter() - t0) / max(n, 1)
        self.calls += n
        return prob, [{**dict(m), "latency_s": float(dict(m).get("latency_s", latency))} for m in meta], \
            bool(getattr(res, "stop", False))

    @ray.method(num_returns="streaming", _generator_backpressure_num_objects=1)
    def label(self, prompts: list[str], a: list[str], b: list[str]):
        """Yields (offset, prob_a, metadata, stop) after every oracle call of `call_size` pairs.

        Backpressure 1: the next oracle call starts only once the caller holds the previous
        answer, so an actor that dies loses at most the answer of the call in flight."""
        n, stop = len(prompts), False
        size = self.call_size or max(n, 1)
        for lo in range(0, n, size):
            hi = min(lo + size, n)
            if stop:  # as the oracle itself does within one call: the rest is never shown
                yield (lo, *skipped_rows(hi - lo), True)
                continue
            prob, meta, stop = self.call(prompts[lo:hi], a[lo:hi], b[lo:hi])
            yield lo, prob, meta, stop

    def label_once(self, prompts: list[str], a: list[str], b: list[str]):
        """`label` for a chunk that is one oracle call: its one answer, without a stream."""
        return (0, *self.call(prompts, a, b))

    def get_call_size(self) -> int:
        return self.call_size

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
        if _failed_to_start(e):  # its __init__ raised (a bad oracle config): the last line says why
            return f"the oracle actor could not start: {str(e).strip().splitlines()[-1].strip()}"[:500]
        return f"the oracle actor died ({type(e).__name__})"
    if isinstance(cause, BaseException):
        e = cause
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[-1] if text else ''}"[:500]


def _failed_to_start(e: BaseException) -> bool:
    return "error raised in its creation task" in str(e)


MAX_ACTOR_RESTARTS = 8  # per chunk: an actor that keeps dying stops the run


@dataclasses.dataclass
class Chunk:
    """Pairs lo..hi-1 of one `OraclePool.label` call; `at` is the first one not answered yet."""

    lo: int
    hi: int
    at: int
    tries: int = 0  # oracle failures in a row (the oracle's retry budget)
    restarts: int = 0  # actor deaths (Ray restarts it; not the oracle's fault)
    ready_at: float = 0.0  # time.monotonic() before which it is not sent again (backoff)


class OraclePool:
    """Label pairs with a pool of `OracleActor`s: chunks round-robin, at most
    `max_concurrency` chunks in flight, each chunk's answers streamed back one oracle call at a
    time. An answer is kept the moment it arrives: a chunk whose actor died, or whose oracle
    failed (retried up to `max_retries` times in a row), is sent again from its first pair
    still unanswered, so only the call that was in flight is ever asked twice. An `OracleError`
    says how many requests it already sent (`attempts`: an HTTP oracle retries a request
    itself, within the same `max_retries`): they count against the budget, so a failing request
    is sent at most max_retries + 1 times in all, and one that is not worth retrying (HTTP 4xx)
    stops at once."""

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
        self._sizes: list[int] | None = None

    def _submit(self, c: Chunk, prompts, a, b):
        """-> an ObjectRefGenerator (one answer per oracle call), or an ObjectRef when the
        chunk is a single oracle call (a stream costs ~1 ms more per chunk)."""
        i = self._next % len(self.actors)
        self._next += 1
        args = (prompts[c.at:c.hi], a[c.at:c.hi], b[c.at:c.hi])
        size = self._call_sizes[i]  # 0: the whole chunk is one call
        if size == 0 or size >= c.hi - c.at:
            return self.actors[i].label_once.remote(*args)
        return self.actors[i].label.remote(*args)

    @property
    def _call_sizes(self) -> list[int]:
        """Each actor's `call_size` (-1: unknown, it was down when asked: always stream)."""
        if self._sizes is None:
            try:
                self._sizes = [int(x) for x in ray.get([x.get_call_size.remote() for x in self.actors])]
            except (ray.exceptions.RayActorError, AttributeError):  # down, or a stand-in actor
                return [-1] * len(self.actors)
        return self._sizes

    def label(self, prompts: list[str], a: list[str], b: list[str]):
        """-> (prob_a [N] float32, metadata list[dict] with latency_s and retries).

        Raises OracleUnavailable past the retry budgets; its `answered` [N] bool, `prob_a` and
        `metadata` hold the answers received before (paid: the caller must keep them).
        `self.stop_requested` turns True when an oracle asked the run to stop (a human quit)."""
        n = len(prompts)
        out = (np.zeros(n, np.float32), [{} for _ in range(n)], np.zeros(n, bool))
        todo = [Chunk(lo, min(lo + self.chunk_size, n), lo) for lo in range(0, n, self.chunk_size)]
        running: dict[Any, tuple[Chunk, int]] = {}  # stream -> (chunk, its first pair)
        try:
            while todo or running:
                now = time.monotonic()
                for c in [c for c in todo if c.ready_at <= now][:self.max_concurrency - len(running)]:
                    todo.remove(c)
                    running[self._submit(c, prompts, a, b)] = (c, c.at)
                wake = min((c.ready_at for c in todo), default=None)
                if not running:
                    time.sleep(max(0.0, wake - now))
                    continue
                timeout = None if wake is None or len(running) >= self.max_concurrency \
                    else max(0.0, wake - now)
                done, _ = ray.wait(list(running), num_returns=1, timeout=timeout)
                for stream in done:
                    self._receive(stream, running, todo, out)
        except OracleUnavailable as e:
            for stream in running:
                ray.cancel(stream)
            e.prob_a, e.metadata, e.answered = out
            raise
        return out[0], out[1]

    def _receive(self, stream, running: dict, todo: list, out) -> None:
        """Take the next answer of `stream`, or requeue its chunk when the call failed."""
        prob, meta, answered = out
        c, first = running[stream]
        if isinstance(stream, ray.ObjectRef):  # label_once: its one answer ends it
            del running[stream]
            ref = stream
        else:
            try:
                ref = next(stream)
            except StopIteration:  # every pair sent on this stream is answered
                del running[stream]
                if c.at < c.hi:
                    raise RuntimeError(f"{self.name}: the oracle actor ended its answers at pair "
                                       f"{c.at} of {c.lo}..{c.hi - 1}") from None
                return
        try:
            off, p, m, stop = ray.get(ref)
        except ray.exceptions.RayActorError as e:  # the actor died or is restarting
            running.pop(stream, None)
            # Ray restarts it (max_restarts): not the oracle's fault, so not its retry budget
            c.restarts += 1
            if _failed_to_start(e):  # not a death Ray recovers from: no point in waiting
                raise OracleUnavailable(f"{self.name}: {_cause(e)}") from e
            if c.restarts > MAX_ACTOR_RESTARTS:
                raise OracleUnavailable(
                    f"{self.name}: its actor died {c.restarts} times on pairs {c.at}..{c.hi - 1}; "
                    f"last error: {_cause(e)}") from e
            c.ready_at = time.monotonic() + self.backoff_s * 2 ** min(c.restarts - 1, 4)
            todo.append(c)
            return
        except Exception as e:  # oracle raised, bad reply
            running.pop(stream, None)
            cause = getattr(e, "cause", None)  # RayTaskError: the exception in the actor
            error = cause if isinstance(cause, BaseException) else e
            # one budget: an HTTP oracle's own retries of a request count here too
            c.tries += error.attempts if isinstance(error, OracleError) else 1
            final = isinstance(error, OracleError) and not error.retry
            if c.tries > self.max_retries or final:
                why = ("with an error that is not retried" if final else
                       f"past its retry budget (oracle.max_retries = {self.max_retries})")
                err = OracleUnavailable(f"{self.name} failed {c.tries} times in a row on pairs "
                                        f"{c.at}..{c.hi - 1}, {why}; last error: {_cause(e)}")
                err.error = error
                raise err from e
            c.ready_at = time.monotonic() + self.backoff_s * 2 ** (c.tries - 1)
            todo.append(c)
            return
        lo = first + int(off)
        hi = lo + len(p)
        if lo != c.at or hi > c.hi:
            raise RuntimeError(f"{self.name}: answer for pairs {lo}..{hi - 1}, expected the "
                               f"next from pair {c.at} of {c.lo}..{c.hi - 1}")
        prob[lo:hi] = p
        for i, row in enumerate(m):
            meta[lo + i] = {**dict(row), "retries": c.tries}
        answered[lo:hi] = True
        c.at, c.tries = hi, 0
        self.queries += hi - lo
        self.stop_requested |= bool(stop)

    def num_calls(self) -> int:
        """Pairs labelled, summed over the actors (restarted actors start again from 0)."""
        return int(sum(ray.get([x.num_calls.remote() for x in self.actors])))

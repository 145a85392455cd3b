"""Human oracle: a terminal prompt shows the prompt and both responses and records the answer.

Answers: `1` (first shown is better), `2` (second), `t` (tie), `s` (skip: no label), `q` (quit:
this and all remaining pairs are skipped and `result.stop` is set so the run can stop cleanly;
answers already given are returned, never lost). Anything else is asked again.
With `shuffle` (default on) the two responses are shown in a random order (seeded) to avoid
position bias; the answer is mapped back to (a, b). Skipped pairs have prob_a = nan and
metadata["skipped"] = True. Streams are injectable (`stdin`, `stdout`) for tests.

Config: {"kind": "human", "shuffle": true, "seed": 0, "max_chars": 2000}.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from duel.oracles.base import Oracle, OracleResult, check_keys

_SCORE = {"1": 1.0, "2": 0.0, "t": 0.5}


class HumanOracle(Oracle):
    kind = "human"

    def __init__(self, shuffle: bool = True, seed: int = 0, max_chars: int = 2000, stdin=None, stdout=None):
        self.shuffle, self.max_chars = bool(shuffle), int(max_chars)
        self._rng = np.random.default_rng(seed)
        self.stdin, self.stdout = stdin, stdout
        self.asked = 0

    @classmethod
    def from_config(cls, cfg, **kwargs):
        check_keys(cfg, {"shuffle", "seed", "max_chars"}, "human oracle")
        return cls(**{k: cfg[k] for k in ("shuffle", "seed", "max_chars") if k in cfg}, **kwargs)

    def _cut(self, s: str) -> str:
        return s if len(s) <= self.max_chars else s[: self.max_chars] + f" ...[{len(s) - self.max_chars} more chars]"

    def _label(self, prompts, a, b):
        fin = self.stdin or sys.stdin
        out = self.stdout or sys.stdout
        probs = np.full(len(prompts), np.nan, np.float32)
        meta: list[dict] = []
        stop = False
        for i, (p, x, y) in enumerate(zip(prompts, a, b)):
            if stop:
                meta.append({"latency_s": 0.0, "retries": 0, "skipped": True, "quit": True})
                continue
            swap = bool(self.shuffle and self._rng.random() < 0.5)
            first, second = (y, x) if swap else (x, y)
            out.write(
                f"\n=== pair {i + 1}/{len(prompts)} ===\n[prompt]\n{self._cut(p)}\n\n"
                f"[1]\n{self._cut(first)}\n\n[2]\n{self._cut(second)}\n"
            )
            t0 = time.perf_counter()
            reprompts = 0
            while True:
                out.write("better? [1/2/t(ie)/s(kip)/q(uit)] ")
                out.flush()
                line = fin.readline()
                ans = line.strip().lower()[:1] if line else "q"  # EOF = quit
                if ans in ("1", "2", "t", "s", "q"):
                    break
                reprompts += 1
            m = {"latency_s": time.perf_counter() - t0, "retries": reprompts, "swapped": swap, "answer": ans}
            if ans in _SCORE:
                v = _SCORE[ans]
                probs[i] = 1.0 - v if swap else v
                m["skipped"] = False
                self.asked += 1
            else:
                m["skipped"] = True
                if ans == "q":
                    m["quit"] = stop = True
            meta.append(m)
        return OracleResult(probs, meta, stop=stop)

    def __getstate__(self):
        return {**self.__dict__, "stdin": None, "stdout": None}

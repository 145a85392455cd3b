"""Remote oracle: any HTTP service that answers preference queries in this JSON schema.

Request (POST `url`, Content-Type application/json), up to `batch_size` pairs per request:

    {"pairs": [{"prompt": "...", "response_a": "...", "response_b": "..."}, ...]}

Reply (HTTP 200), one probability per pair, in order:

    {"prob_a": [0.83, 0.1, ...]}        # P(response_a preferred) in [0, 1]

A reply with another length, a non-number, a value outside [0, 1], or a body that is not JSON
is malformed. Timeouts, connection errors, HTTP 408/429/5xx and malformed replies are retried
with exponential backoff (duel.oracles.transport); after the retry budget the oracle raises
`OracleError` and no label is produced. If `api_key_env` names an environment variable, its
value is sent as `Authorization: Bearer ...` (read at call time, never stored, logged or pickled).

Config: {"kind": "remote", "url": "http://host:port/label", "timeout_s": 30, "max_retries": 3,
"backoff_s": 0.5, "max_backoff_s": 30, "batch_size": 64, "api_key_env": null}. In a run,
max_retries is the run's `oracle.max_retries` (one budget with the oracle pool), the rest
`oracle.options`.
Per-pair metadata: latency_s (the request's wall time shared by its pairs), retries, errors
(codes of the failed attempts), request (index of the request within this call).
"""

from __future__ import annotations

import math
import os

import numpy as np

from duel.oracles.base import Oracle, OracleError, OracleResult, check_keys
from duel.oracles.transport import MalformedReply, Retry, post_json


def parse_reply(reply, n: int) -> list[float]:
    if not isinstance(reply, dict) or "prob_a" not in reply:
        raise MalformedReply(f"expected an object with key 'prob_a', got {str(reply)[:200]}")
    probs = reply["prob_a"]
    if not isinstance(probs, list) or len(probs) != n:
        got = len(probs) if isinstance(probs, list) else type(probs).__name__
        raise MalformedReply(f"'prob_a' must be a list of {n} numbers, got {got}")
    out = []
    for i, p in enumerate(probs):
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not math.isfinite(p) or not 0 <= p <= 1:
            raise MalformedReply(f"'prob_a'[{i}] must be a number in [0, 1], got {p!r}")
        out.append(float(p))
    return out


class RemoteOracle(Oracle):
    kind = "remote"

    def __init__(self, url: str, retry: Retry | None = None, batch_size: int = 64, api_key_env: str | None = None):
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"remote oracle config: key 'url' must be an http(s) URL, got {url!r}")
        if batch_size < 1:
            raise ValueError(f"remote oracle config: key 'batch_size' must be >= 1, got {batch_size}")
        self.url, self.retry, self.batch_size, self.api_key_env = url, retry or Retry(), int(batch_size), api_key_env

    @classmethod
    def from_config(cls, cfg, **kwargs):
        keys = {"timeout_s", "max_retries", "backoff_s", "max_backoff_s"}
        check_keys(cfg, {"url", "batch_size", "api_key_env"} | keys, "remote oracle")
        retry = Retry(**{k: cfg[k] for k in keys if k in cfg})
        return cls(cfg.get("url"), retry, cfg.get("batch_size", 64), cfg.get("api_key_env"), **kwargs)

    def _headers(self) -> dict[str, str]:
        if not self.api_key_env:
            return {}
        key = os.environ.get(self.api_key_env)
        if not key:
            raise OracleError(f"remote oracle: environment variable {self.api_key_env!r} (api_key_env) is not set")
        return {"Authorization": f"Bearer {key}"}

    def _label(self, prompts, a, b):
        probs, meta = [], []
        for r, start in enumerate(range(0, len(prompts), self.batch_size)):
            sl = slice(start, start + self.batch_size)
            pairs = [
                {"prompt": p, "response_a": x, "response_b": y}
                for p, x, y in zip(prompts[sl], a[sl], b[sl])
            ]
            out, st = post_json(
                self.url, {"pairs": pairs}, lambda rep, n=len(pairs): parse_reply(rep, n), self.retry, self._headers()
            )
            probs.extend(out)
            meta.extend(
                {"latency_s": st.latency_s, "retries": st.retries, "errors": list(st.errors), "request": r}
                for _ in pairs
            )
        return OracleResult(np.array(probs, np.float32), meta)

    def __repr__(self):
        return f"RemoteOracle(url={self.url!r}, batch_size={self.batch_size}, retry={self.retry})"

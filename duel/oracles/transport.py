"""POST JSON with a timeout and retries with exponential backoff, over one `httpx` client.

`post_json(url, body, parse, ...)` sends `body`, decodes the JSON reply and hands it to `parse`
(which raises `MalformedReply` when the reply has the wrong shape). Retried: timeouts, connection
errors, HTTP 408/429/5xx, undecodable JSON and `MalformedReply`. Not retried: other HTTP 4xx
(a bad request or key does not get better). After `max_retries` retries it raises `OracleError`
naming the URL, the attempts and the last error; it never returns a made-up answer.
The sleep before retry k (k = 1, 2, ...) is min(backoff_s * 2**(k-1), max_backoff_s).

This is the only place an HTTP request is retried: the error carries `attempts` (and `retry`
False for a 4xx), and the oracle pool (actors/oracle.py) counts them against the same budget,
the run's `oracle.max_retries`, instead of sending the request's call again.
Headers are never logged or put in errors (they may carry an API key).
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from typing import Any, Callable

import httpx

from duel.oracles.base import OracleError

RETRY_STATUS = {408, 429, 500, 502, 503, 504}


class MalformedReply(ValueError):
    """The endpoint answered, but not in the documented shape."""


@dataclasses.dataclass
class Retry:
    timeout_s: float = 30.0
    max_retries: int = 3
    backoff_s: float = 0.5
    max_backoff_s: float = 30.0


@dataclasses.dataclass
class CallStats:
    latency_s: float  # wall time of the whole call, retries and backoff included
    retries: int  # attempts - 1
    errors: list[str]  # one short code per failed attempt: timeout, http_500, malformed_json, ...


_client: httpx.Client | None = None
_client_lock = threading.Lock()


def client() -> httpx.Client:
    """The process's one HTTP client (connection pool; thread-safe, so a judge's threads share
    it). Created on first use, so an oracle pickles and starts without one."""
    global _client
    with _client_lock:
        if _client is None:
            _client = httpx.Client()
        return _client


def post_json(
    url: str,
    body: dict,
    parse: Callable[[Any], Any],
    retry: Retry,
    headers: dict[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Any, CallStats]:
    data = json.dumps(body).encode()
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    errors: list[str] = []
    last = ""
    t0 = time.perf_counter()
    for attempt in range(retry.max_retries + 1):
        if attempt > 0:
            sleep(min(retry.backoff_s * 2 ** (attempt - 1), retry.max_backoff_s))
        try:
            resp = client().post(url, content=data, headers=hdrs, timeout=retry.timeout_s)
        except httpx.TimeoutException as e:
            code, last = "timeout", f"timed out after {retry.timeout_s}s ({e})"
        except httpx.TransportError as e:  # refused, reset, closed, cut
            code, last = "connection", f"connection error: {e}"
        else:
            if resp.is_success:
                try:
                    out = parse(_json(resp.content))
                    return out, CallStats(time.perf_counter() - t0, attempt, errors)
                except MalformedReply as e:
                    code, last = "malformed_json", str(e)
            else:
                code, last = f"http_{resp.status_code}", f"HTTP {resp.status_code} {resp.reason_phrase}"
                if resp.status_code not in RETRY_STATUS:
                    errors.append(code)
                    raise OracleError(
                        f"{url}: {last} (not retried; attempt {attempt + 1}); errors so far: {errors}",
                        attempts=attempt + 1, retry=False)
        errors.append(code)
    raise OracleError(
        f"{url}: no valid answer after {retry.max_retries + 1} attempts "
        f"({retry.max_retries} retries); errors: {errors}; last: {last}",
        attempts=retry.max_retries + 1)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise MalformedReply(f"reply is not JSON ({e}): {raw[:200]!r}") from None

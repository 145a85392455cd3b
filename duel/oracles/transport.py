"""POST JSON with a timeout and retries with exponential backoff (stdlib urllib only).

`post_json(url, body, parse, ...)` sends `body`, decodes the JSON reply and hands it to `parse`
(which raises `MalformedReply` when the reply has the wrong shape). Retried: timeouts, connection
errors, HTTP 408/429/5xx, undecodable JSON and `MalformedReply`. Not retried: other HTTP 4xx
(a bad request or key does not get better). After `max_retries` retries it raises `OracleError`
naming the URL, the attempts and the last error; it never returns a made-up answer.
The sleep before retry k (k = 1, 2, ...) is min(backoff_s * 2**(k-1), max_backoff_s).
Headers are never logged or put in errors (they may carry an API key).
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from typing import Any, Callable

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
        req = urllib.request.Request(url, data=data, headers=hdrs, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=retry.timeout_s) as resp:
                raw = resp.read()
            try:
                reply = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise MalformedReply(f"reply is not JSON ({e}): {raw[:200]!r}") from None
            out = parse(reply)
            return out, CallStats(time.perf_counter() - t0, attempt, errors)
        except urllib.error.HTTPError as e:
            code = f"http_{e.code}"
            last = f"HTTP {e.code} {e.reason}"
            if e.code not in RETRY_STATUS:
                errors.append(code)
                raise OracleError(
                    f"{url}: {last} (not retried; attempt {attempt + 1}); errors so far: {errors}"
                ) from None
        except MalformedReply as e:
            code, last = "malformed_json", str(e)
        except (TimeoutError, socket.timeout) as e:
            code, last = "timeout", f"timed out after {retry.timeout_s}s ({e})"
        except urllib.error.URLError as e:
            if isinstance(e.reason, (TimeoutError, socket.timeout)):
                code, last = "timeout", f"timed out after {retry.timeout_s}s"
            else:
                code, last = "connection", f"connection error: {e.reason}"
        except (ConnectionError, OSError, http.client.HTTPException) as e:  # reset, closed, cut
            code, last = "connection", f"connection error: {e}"
        errors.append(code)
    raise OracleError(
        f"{url}: no valid answer after {retry.max_retries + 1} attempts "
        f"({retry.max_retries} retries); errors: {errors}; last: {last}"
    )

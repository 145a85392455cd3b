"""LLM judge: an OpenAI-compatible chat-completions endpoint compares two responses.

Each pair is asked in both orders (a shown first, then b shown first) and the two verdicts are
averaged, which cancels the judge's position bias: a judge that always answers "A" gives
prob_a = (1 + 0) / 2 = 1/2. Verdicts: "A" -> 1, "B" -> 0, "tie" -> 1/2 (for the first-shown
response). A reply whose content does not start with A, B or tie is malformed and retried like
a timeout or an HTTP 5xx (duel.oracles.transport); after the retry budget the oracle raises.

Request: POST {base_url}/chat/completions with {"model", "messages": [system, user],
"temperature", "max_tokens"}. Reply: {"choices": [{"message": {"content": "A"}}], ...}.

Config: {"kind": "judge", "base_url": "https://api.openai.com/v1", "model": "...",
"api_key_env": "OPENAI_API_KEY", "both_orders": true, "temperature": 0.0, "max_tokens": 4,
"concurrency": 4, "timeout_s": 30, "max_retries": 3, "backoff_s": 0.5, "max_backoff_s": 30,
"system": optional str, "template": optional str with {prompt}, {first}, {second}}. In a run,
max_retries is the run's `oracle.max_retries` (one budget with the oracle pool), the rest
`oracle.options`.
The API key is read from the environment variable named by api_key_env at call time; it is
never stored on the oracle, logged, put in metadata or pickled.
Per-pair metadata: latency_s, retries (both requests), errors, verdict_ab, verdict_ba,
consistent (the two orders agree).
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import time

import numpy as np

from duel.oracles.base import Oracle, OracleError, OracleResult, check_keys
from duel.oracles.transport import MalformedReply, Retry, post_json

SYSTEM = "You are a careful judge of response quality. Answer with exactly one letter: A or B."
TEMPLATE = (
    "Which response answers the prompt better?\n\n"
    "[Prompt]\n{prompt}\n\n[Response A]\n{first}\n\n[Response B]\n{second}\n\n"
    "Answer with a single letter, A or B."
)
_VERDICT = re.compile(r"^\W*(?:response\s*)?(a|b|tie)\b", re.IGNORECASE)
_SCORE = {"a": 1.0, "b": 0.0, "tie": 0.5}


def parse_verdict(reply) -> str:
    """'a', 'b' or 'tie' from a chat-completions reply; MalformedReply otherwise."""
    try:
        content = reply["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise MalformedReply(f"expected choices[0].message.content, got {str(reply)[:200]}") from None
    m = _VERDICT.match(content or "") if isinstance(content, str) else None
    if m is None:
        raise MalformedReply(f"judge verdict must start with A, B or tie, got {str(content)[:100]!r}")
    return m.group(1).lower()


class JudgeOracle(Oracle):
    kind = "judge"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str | None = None,
        both_orders: bool = True,
        temperature: float = 0.0,
        max_tokens: int = 4,
        concurrency: int = 4,
        retry: Retry | None = None,
        system: str = SYSTEM,
        template: str = TEMPLATE,
    ):
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"judge oracle config: key 'base_url' must be an http(s) URL, got {base_url!r}")
        if not model:
            raise ValueError("judge oracle config: key 'model' is required")
        for field in ("{prompt}", "{first}", "{second}"):
            if field not in template:
                raise ValueError(f"judge oracle config: key 'template' must contain {field}")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self.api_key_env, self.both_orders = model, api_key_env, bool(both_orders)
        self.temperature, self.max_tokens, self.concurrency = float(temperature), int(max_tokens), max(1, int(concurrency))
        self.retry, self.system, self.template = retry or Retry(), system, template

    @classmethod
    def from_config(cls, cfg, **kwargs):
        rkeys = {"timeout_s", "max_retries", "backoff_s", "max_backoff_s"}
        keys = {"base_url", "model", "api_key_env", "both_orders", "temperature", "max_tokens", "concurrency", "system", "template"}
        check_keys(cfg, keys | rkeys, "judge oracle")
        retry = Retry(**{k: cfg[k] for k in rkeys if k in cfg})
        args = {k: cfg[k] for k in keys if k in cfg}
        return cls(**args, retry=retry, **kwargs)

    def _headers(self) -> dict[str, str]:
        if not self.api_key_env:
            return {}
        key = os.environ.get(self.api_key_env)
        if not key:
            raise OracleError(f"judge oracle: environment variable {self.api_key_env!r} (api_key_env) is not set")
        return {"Authorization": f"Bearer {key}"}

    def _ask(self, prompt: str, first: str, second: str, headers):
        body = {
            "model": self.model,
            "messages": [
                {"role": "system", "content": self.system},
                {"role": "user", "content": self.template.format(prompt=prompt, first=first, second=second)},
            ],
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        return post_json(self.url, body, parse_verdict, self.retry, headers)

    def _one(self, prompt, a, b, headers) -> tuple[float, dict]:
        t0 = time.perf_counter()
        v_ab, st1 = self._ask(prompt, a, b, headers)
        meta = {"verdict_ab": v_ab, "retries": st1.retries, "errors": list(st1.errors)}
        p = _SCORE[v_ab]
        if self.both_orders:
            v_ba, st2 = self._ask(prompt, b, a, headers)
            p = 0.5 * (p + 1.0 - _SCORE[v_ba])
            meta.update(
                verdict_ba=v_ba, retries=st1.retries + st2.retries, errors=st1.errors + st2.errors,
                consistent=_SCORE[v_ab] == 1.0 - _SCORE[v_ba],
            )
        meta["latency_s"] = time.perf_counter() - t0
        return p, meta

    def _label(self, prompts, a, b):
        headers = self._headers()
        with concurrent.futures.ThreadPoolExecutor(self.concurrency) as pool:
            out = list(pool.map(lambda t: self._one(*t, headers), zip(prompts, a, b)))
        return OracleResult(np.array([p for p, _ in out], np.float32), [m for _, m in out])

    def __repr__(self):
        return f"JudgeOracle(url={self.url!r}, model={self.model!r}, api_key_env={self.api_key_env!r})"

"""Win rate of a policy against reference responses, judged by an oracle, with a 95% interval.

A comparison is one oracle call on (prompt, policy response, reference response): a win counts
1 when P(policy > reference) > 1/2, a tie (exactly 1/2: equal gold rewards with tau = 0, or a
judge that split its two orders) counts 1/2, a loss 0. Skipped comparisons (nan) are left out.
The interval is the Wilson score interval at 95% (z = 1.96) for the proportion
(wins + ties/2) / n, with n the number of comparisons.

`evaluate_policy` samples responses on the eval prompts greedily (temperature 0) and at
temperature 1 and reports both win rates and the share of well-formed responses.
`best_of_n` is the second number: n samples per prompt, the one with the highest reward-ensemble
mean is compared with the reference.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable, Sequence

import numpy as np

Z95 = 1.959963984540054


def wilson_interval(p_hat: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion p_hat observed over n trials."""
    if n <= 0:
        return 0.0, 1.0
    d = 1 + z * z / n
    c = (p_hat + z * z / (2 * n)) / d
    h = z * math.sqrt(max(p_hat * (1 - p_hat) / n + z * z / (4 * n * n), 0.0)) / d
    return max(0.0, c - h), min(1.0, c + h)


@dataclasses.dataclass
class WinRate:
    win_rate: float
    lo: float
    hi: float
    n: int
    wins: int
    ties: int
    losses: int
    mean_prob: float  # mean P(policy > reference): the soft win rate

    def as_dict(self, prefix: str = "win_rate") -> dict:
        return {prefix: self.win_rate, f"{prefix}_lo": self.lo, f"{prefix}_hi": self.hi, f"{prefix}_n": self.n,
                f"{prefix}_ties": self.ties, f"{prefix}_soft": self.mean_prob}


def win_rate_from_probs(prob: np.ndarray) -> WinRate:
    p = np.asarray(prob, np.float64)
    p = p[~np.isnan(p)]
    wins, ties = int((p > 0.5).sum()), int((p == 0.5).sum())
    n = len(p)
    rate = (wins + 0.5 * ties) / n if n else float("nan")
    lo, hi = wilson_interval(rate, n) if n else (float("nan"), float("nan"))
    return WinRate(rate, lo, hi, n, wins, ties, n - wins - ties, float(p.mean()) if n else float("nan"))


@dataclasses.dataclass
class ExpectedWinRate:
    """The mean of the oracle's P(policy > reference) over prompts and samples (no label is
    sampled, so a simulated oracle adds no noise), with a 95% interval over prompts: the samples
    of one prompt are averaged first, then mean +- t * sd / sqrt(P) over the P prompts."""

    mean: float
    lo: float
    hi: float
    prompts: int
    samples: int

    def as_dict(self, prefix: str = "expected_win_rate") -> dict:
        return {prefix: self.mean, f"{prefix}_lo": self.lo, f"{prefix}_hi": self.hi}


def expected_win_rate(prob: np.ndarray) -> ExpectedWinRate:
    """prob [P, n]: P(response j of prompt i > its reference); nan (skipped) entries left out."""
    from scipy import stats

    p = np.asarray(prob, np.float64)
    p = p.reshape(p.shape[0], -1)
    per_prompt = np.array([row[~np.isnan(row)].mean() for row in p if (~np.isnan(row)).any()])
    P = len(per_prompt)
    if P == 0:
        return ExpectedWinRate(float("nan"), float("nan"), float("nan"), 0, p.shape[1])
    mean = float(per_prompt.mean())
    if P < 2:
        return ExpectedWinRate(mean, float("nan"), float("nan"), P, p.shape[1])
    h = float(stats.t.ppf(0.975, P - 1) * per_prompt.std(ddof=1) / math.sqrt(P))
    return ExpectedWinRate(mean, mean - h, mean + h, P, p.shape[1])


def win_rate(oracle, prompts: Sequence[str], responses: Sequence[str], references: Sequence[str]) -> WinRate:
    """One oracle call per comparison: P(response > reference)."""
    res = oracle.label(list(prompts), list(responses), list(references))
    return win_rate_from_probs(res.prob_a)


def generate_texts(model, tokenizer, prompts: Sequence[str], key, *, n: int = 1, temperature: float = 1.0,
                   max_new_tokens: int = 16, top_p: float = 1.0, batch_size: int = 64, max_prompt_len: int = 512,
                   messages: Sequence[list | None] | None = None):
    """Sample n responses per prompt -> (texts [P][n], finished [P, n] bool).

    messages[i], when given and not None, is prompt i as chat messages (the template renders them)."""
    import jax

    from duel.data import encode_prompts
    from duel.sampling import SamplingParams, generate

    params = SamplingParams(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                            stop_token_ids=(tokenizer.eos_token_id,), pad_token_id=tokenizer.pad_token_id or 0)
    texts, finished = [], []
    rows = [{"id": str(i), "prompt": p, "messages": messages[i] if messages else None}
            for i, p in enumerate(prompts)]
    for s in range(0, len(rows), batch_size):
        batch, _ = encode_prompts(tokenizer, rows[s : s + batch_size], max_prompt_len)
        out = generate(model, (batch.input_ids, batch.attention_mask), jax.random.fold_in(key, s), params, n)
        gen = out.mask.astype(bool) & (out.tokens != tokenizer.eos_token_id)
        for i in range(out.tokens.shape[0]):
            texts.append([tokenizer.decode(out.tokens[i, j][gen[i, j]]) for j in range(n)])
        finished.append(out.finished)
    return texts, np.concatenate(finished)


def evaluate_policy(model, tokenizer, rows: list[dict], references: dict[str, str], oracle, key, *,
                    max_new_tokens: int = 16, greedy: bool = True, sampled: bool = True, samples: int = 1,
                    temperature: float = 1.0, well_formed: Callable[[str, str], bool] | None = None,
                    batch_size: int = 64) -> dict:
    """{"greedy": WinRate, "sampled": WinRate, "well_formed_greedy", "well_formed_sampled", "finished_*"}."""
    import jax

    prompts = [r["prompt"] for r in rows]
    refs = [references[r["id"]] for r in rows]
    out: dict = {}
    modes = ([("greedy", 0.0, 1)] if greedy else []) + ([("sampled", temperature, samples)] if sampled else [])
    for i, (name, temp, n) in enumerate(modes):
        texts, fin = generate_texts(model, tokenizer, prompts, jax.random.fold_in(key, i), n=n, temperature=temp,
                                    max_new_tokens=max_new_tokens, batch_size=batch_size)
        flat_p = [p for p in prompts for _ in range(n)]
        flat_y = [y for ys in texts for y in ys]
        flat_r = [r for r in refs for _ in range(n)]
        out[name] = win_rate(oracle, flat_p, flat_y, flat_r)
        out[f"finished_{name}"] = float(fin.mean())
        if well_formed is not None:
            ok = np.array([bool(well_formed(p, y)) for p, y in zip(flat_p, flat_y)]) & fin.reshape(-1)
            out[f"well_formed_{name}"] = float(ok.mean())
        out[f"responses_{name}"] = texts
    return out


def best_of_n(model, tokenizer, rows: list[dict], references: dict[str, str], oracle, key, n: int,
              reward_fn: Callable[[np.ndarray], np.ndarray], features_fn: Callable, *,
              max_new_tokens: int = 16, temperature: float = 1.0, batch_size: int = 64) -> dict:
    """Win rate of the best of n samples under the ensemble mean:
    {"best_of_n": WinRate, "chosen": [P] index of the chosen sample, "responses": [P][n] texts}.

    features_fn(prompts: list[str], responses: list[str]) -> [B, F] features phi(x, y);
    reward_fn(features [P, n, F]) -> rewards [K, P, n] (or [P, n]); the chosen sample per prompt
    is argmax over n of the mean over members.
    """
    prompts = [r["prompt"] for r in rows]
    texts, _ = generate_texts(model, tokenizer, prompts, key, n=n, temperature=temperature,
                              max_new_tokens=max_new_tokens, batch_size=batch_size)
    feats = np.asarray(features_fn([p for p in prompts for _ in range(n)], [y for ys in texts for y in ys]))
    r = np.asarray(reward_fn(feats.reshape(len(prompts), n, -1)))
    mean = r.mean(0) if r.ndim == 3 else r
    best = mean.argmax(-1)
    chosen = [texts[i][best[i]] for i in range(len(prompts))]
    w = win_rate(oracle, prompts, chosen, [references[r["id"]] for r in rows])
    return {"best_of_n": w, "chosen": best, "responses": texts}

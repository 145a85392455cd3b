"""Reward-model oracle: a local Hugging Face *ForSequenceClassification directory run by duel.models.

r(x, y) = score of the model at the last token of [prompt tokens (with BOS) | response tokens],
or of the tokenizer's chat template over [user: prompt, assistant: response] when the tokenizer
has one and `chat_template` is true. P(a > b) = sigmoid((r_a - r_b) / tau).
Sequences longer than max_length keep their last max_length tokens (the score is read at the
end); each pair's metadata says whether its a or b sequence was truncated.

Config: {"kind": "reward_model", "path": DIR, "tau": 1.0, "batch_size": 32, "max_length": 512,
"append_eos": false, "chat_template": true, "label_index": 0, "dtype": "float32"}.
The tokenizer and its chat template are the reward model's own (DIR's tokenizer files), never the
policy's. One `label` call scores its 2N sequences (both responses of every pair) in forward
passes of `batch_size` rows; `dtype: bfloat16` holds the weights and computes in bfloat16 (half
the memory of a 2B-8B reward model; scores differ from float32 by ~1e-2 relative).
The model and tokenizer load lazily, once per process (first `label`; a lock keeps concurrent
calls of one Ray actor from loading it twice), and are dropped when pickled, so the oracle
ships to a Ray actor as its config.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from duel.oracles.base import Oracle, OracleResult, bt_prob, check_keys


def _bucket(n: int) -> int:
    b = 8
    while b < n:
        b *= 2
    return b


DTYPES = ("float32", "bfloat16")


class RewardModelOracle(Oracle):
    kind = "reward_model"

    def __init__(self, path, tau: float = 1.0, batch_size: int = 32, max_length: int = 512,
                 append_eos: bool = False, chat_template: bool = True, label_index: int = 0,
                 dtype: str = "float32"):
        p = Path(str(path)).expanduser() if path is not None else None
        if p is None or not (p / "config.json").is_file():
            raise ValueError(f"reward_model oracle config: key 'path' must be a model directory with config.json, got {path!r}")
        if tau <= 0:
            raise ValueError(f"reward_model oracle config: key 'tau' must be > 0, got {tau}")
        if dtype not in DTYPES:
            raise ValueError(f"reward_model oracle config: key 'dtype' must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"reward_model oracle config: key 'batch_size' must be an integer >= 1, got {batch_size!r}")
        self.dtype = dtype
        self.path, self.tau, self.batch_size, self.max_length = p, float(tau), int(batch_size), int(max_length)
        self.append_eos, self.chat_template, self.label_index = bool(append_eos), bool(chat_template), int(label_index)
        self._model = self._tok = self._fwd = None
        self._lock = threading.Lock()
        self.loads = 0  # times the weights were read (one per process)

    @classmethod
    def from_config(cls, cfg, **kwargs):
        keys = {"path", "tau", "batch_size", "max_length", "append_eos", "chat_template", "label_index", "dtype"}
        check_keys(cfg, keys, "reward_model oracle")
        return cls(**{k: cfg[k] for k in keys if k in cfg}, **kwargs)

    def _load(self):
        with self._lock:
            if self._model is None:
                self._load_now()

    def _load_now(self):
        import jax
        import jax.numpy as jnp
        from flax import nnx

        from duel.models import load_pretrained
        from duel.tasks.tokenizer import load_tokenizer

        model, config = load_pretrained(self.path, dtype=getattr(jnp, self.dtype))
        self.loads += 1
        if not getattr(config, "num_labels", 0):
            raise ValueError(f"{self.path}/config.json: expected a *ForSequenceClassification model (num_labels > 0)")
        self._tok = load_tokenizer(self.path)
        graphdef, state = nnx.split(model)
        self._model = (graphdef, state)
        self._fwd = jax.jit(lambda st, ids, mask: nnx.merge(graphdef, st)(ids, mask))

    def encode(self, prompt: str, response: str) -> list[int]:
        tok = self._tok
        if self.chat_template and tok.chat_template:
            msgs = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
            ids = tok.apply_chat_template(msgs, tokenize=True)
        else:
            ids = tok.encode(prompt) + tok.encode(response, add_special_tokens=False)
        if self.append_eos and tok.eos_token_id is not None:
            ids = ids + [tok.eos_token_id]
        return ids

    def scores(self, prompts: list[str], responses: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(rewards [N] float64, truncated [N] bool)."""
        self._load()
        seqs = [self.encode(p, r) for p, r in zip(prompts, responses)]
        trunc = np.array([len(s) > self.max_length for s in seqs])
        seqs = [s[-self.max_length :] for s in seqs]
        pad = self._tok.pad_token_id or 0
        out = []
        for i in range(0, len(seqs), self.batch_size):
            chunk = seqs[i : i + self.batch_size]
            t = _bucket(max(len(s) for s in chunk))
            bsz = _bucket(len(chunk))
            ids = np.full((bsz, t), pad, np.int32)
            mask = np.zeros((bsz, t), np.int32)
            for j, s in enumerate(chunk):  # right padding: the score is read at the last real token
                ids[j, : len(s)], mask[j, : len(s)] = s, 1
            mask[len(chunk) :, 0] = 1  # filler rows: one real token, discarded
            sc = np.asarray(self._fwd(self._model[1], ids, mask), np.float64)
            out.append(sc[: len(chunk), self.label_index])
        return np.concatenate(out), trunc

    def _label(self, prompts, a, b):
        t0 = time.perf_counter()
        n = len(prompts)
        r, t = self.scores(prompts + prompts, a + b)  # both sides in the same forward passes
        ra, rb, ta, tb = r[:n], r[n:], t[:n], t[n:]
        dt = (time.perf_counter() - t0) / len(prompts)
        meta = [
            {"latency_s": dt, "retries": 0, "reward_a": float(x), "reward_b": float(y), "truncated": bool(u or v)}
            for x, y, u, v in zip(ra, rb, ta, tb)
        ]
        return OracleResult(bt_prob(ra, rb, self.tau), meta)

    def __getstate__(self):
        return {**self.__dict__, "_model": None, "_tok": None, "_fwd": None, "_lock": None}

    def __setstate__(self, state):
        self.__dict__.update(state, _lock=threading.Lock())

    def __repr__(self):
        return f"RewardModelOracle(path={str(self.path)!r}, tau={self.tau})"

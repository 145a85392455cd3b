"""sort: "dbeac:" -> "abcde"; five distinct letters, answered in alphabetical order, graded by closeness.

Gold reward of a response y (characters; well-formed = exactly 5 lowercase letters) to a prompt
whose letters sorted are s:
    err = inversions(y) + 2 * missing(y)         inversions: pairs i < j with y[i] > y[j]
                                                 missing: letters of the prompt absent from y
    well-formed:  3 * (1 - min(err, 10) / 10)  +  2 * [err == 0]        in [0, 5]
    otherwise:   -1
err == 0 exactly when y == s. One adjacent swap costs 1, a wrong letter 2, the reversed answer 10:
the reward is graded like arithmetic's, so preferences carry information short of the exact answer.

Reference responses are s with one adjacent swap (position fixed per prompt id), reward 2.7: the
exact answer beats it, another single swap ties, anything worse loses.

Starting behaviour (the SFT data): a sloppy sorter with two habits. Starting from s it swaps
the 2nd and 3rd letters with probability HABIT, then the 4th and 5th with probability HABIT,
then with probability EXTRA swaps one more adjacent pair (uniform over the 4), then with
probability WRONG writes a letter that is not in the prompt at a uniform position. The mode
(both habits, err 2: 35%) loses to the reference, so greedy decoding loses; the exact answer comes
out 7.7% of the time (under 1 in 8 samples), so the online phase must find the rare exact answers
among the samples and learn to drop both habits. Measured on the SFT policy (256 eval prompts x 8
samples at temperature 1): exact 8%, err 1 / 2 / 3 / >= 4: 33% / 38% / 9% / 13%, at least one exact
answer among 8 samples for 49% of prompts; greedy: 86% err 2, 2% exact.
"""

from __future__ import annotations

import hashlib
import re
import string


from duel.tasks.base import Task, register_task

LETTERS = string.ascii_lowercase
LENGTH = 5
HABIT, EXTRA, WRONG = 0.72, 0.3, 0.1
_PROMPT = re.compile(rf"^([a-z]{{{LENGTH}}}):$")
_ANSWER = re.compile(rf"^[a-z]{{{LENGTH}}}$")


def letters_of(prompt: str) -> str:
    m = _PROMPT.match(prompt)
    if m is None or len(set(m.group(1))) != LENGTH:
        raise ValueError(f"sort: expected {LENGTH} distinct lowercase letters and ':', like 'dbeac:', got {prompt!r}")
    return m.group(1)


def answer_of(prompt: str) -> str:
    return "".join(sorted(letters_of(prompt)))


def sort_error(prompt: str, response: str) -> int:
    """inversions(y) + 2 * (letters of the prompt missing from y), for a well-formed y."""
    y = response.strip()
    inversions = sum(y[i] > y[j] for i in range(len(y)) for j in range(i + 1, len(y)))
    missing = len(set(letters_of(prompt)) - set(y))
    return inversions + 2 * missing


def sort_reward(prompt: str, response: str) -> float:
    if not _ANSWER.match(response.strip()):
        return -1.0
    err = sort_error(prompt, response)
    return 3.0 * (1.0 - min(err, 10) / 10.0) + 2.0 * (err == 0)


def _swap(y: list[str], i: int) -> None:
    y[i], y[i + 1] = y[i + 1], y[i]


@register_task("sort")
class Sort(Task):
    level = "char"
    max_new_tokens = 6  # 5 letters and the stop token
    model = {"hidden_size": 96, "num_layers": 2, "num_heads": 4, "intermediate_size": 256}
    sft = {"examples": 32768, "steps": 1200, "batch_size": 64, "learning_rate": 3e-3, "warmup_steps": 30}
    num_train = 4096
    num_eval = 256

    def symbols(self):
        return list(LETTERS) + [":"]

    def make_prompts(self, rng):
        seen, rows = set(), []
        while len(rows) < self.num_train + self.num_eval:
            letters = "".join(rng.choice(list(LETTERS), size=LENGTH, replace=False))
            key = "".join(sorted(letters))
            if key in seen:  # one order per letter set: eval letter sets never appear in train
                continue
            seen.add(key)
            rows.append({"id": f"sort-{letters}", "prompt": f"{letters}:"})
        return rows[self.num_eval :], rows[: self.num_eval]

    def reference(self, row):
        y = list(answer_of(row["prompt"]))
        _swap(y, int.from_bytes(hashlib.sha256(row["id"].encode()).digest()[:4], "little") % (LENGTH - 1))
        return "".join(y)

    def well_formed(self, prompt, response):
        return bool(_ANSWER.match(response.strip()))

    def gold_reward(self, prompt, response):
        return sort_reward(prompt, response)

    def sft_response(self, prompt, rng):
        letters = letters_of(prompt)
        y = sorted(letters)
        if rng.random() < HABIT:
            _swap(y, 1)
        if rng.random() < HABIT:
            _swap(y, 3)
        if rng.random() < EXTRA:
            _swap(y, int(rng.integers(LENGTH - 1)))
        if rng.random() < WRONG:
            others = [c for c in LETTERS if c not in letters]
            y[int(rng.integers(LENGTH))] = others[int(rng.integers(len(others)))]
        return "".join(y)

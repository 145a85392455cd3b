"""reverse: "kbdmf:" -> "fmdbk"; five distinct letters, answered in reverse order, graded by closeness.

A held-out task, written on 2026-12-03 after the round-9 recipe (launch/configs/recipe-r9.yaml)
was fixed, for checking that recipe on a task it was not tuned on. It is designed from its spec
alone: no setting of the recipe, and nothing in this file, was tuned on it (no experiment comparing
strategies was run on it before the check). It is not a shipped task (not in duel/tasks/, not in
SHIPPED); run it with

    PYTHONPATH=docs/results/heldout duel run launch/configs/recipe-r9.yaml --set task=reverse_task:Reverse ...

Prompts: 5 distinct letters from "abcdefghijklmnop" and ':' (e.g. "kbdmf:"); the answer is the
letters reversed ("fmdbk"). 4096 train and 256 eval prompts; an eval letter sequence never appears
in train (deduplicated on the exact sequence). Character-level tokenizer over those 16 letters
and ':'; up to 6 new tokens (5 letters and the stop token).

Gold reward of a response y (stripped; well-formed = exactly 5 lowercase letters) to a prompt whose
answer is a:
    k       = number of positions i with y[i] == a[i]            (0..5)
    missing = letters of the prompt absent from y               (0..5)
    well-formed:  3 * k / 5  -  0.5 * missing  +  2 * [y == a]       exact answer: 5.0
    otherwise:   -1
So one adjacent swap gives 1.8, two disjoint adjacent swaps 0.6, a wrong letter at an otherwise
right position costs 0.6 + 0.5: graded, so preferences carry information short of the exact answer.

Reference responses are a with one adjacent swap (position fixed per prompt id from sha256 of the
id, as in sort), reward 1.8: the exact answer beats it, another single swap ties, worse loses.

Starting behaviour (the SFT data): a sloppy reverser. Starting from a (the true answer), in order:
  - with probability HABIT1 (0.7) it swaps output[0] and output[1] (the first two letters of the
    output come out in prompt order);
  - with probability HABIT2 (0.6) it swaps output[3] and output[4];
  - with probability EXTRA (0.3) it swaps one more adjacent pair (uniform over the 4);
  - with probability WRONG (0.15) it replaces the letter at a uniform position by a uniform letter
    of "abcdefghijklmnop" not in the prompt.
The mode (both habits, reward 0.6) loses to the reference. Exact answers are rare: neither habit,
no extra swap and no wrong letter gives 0.3 * 0.4 * 0.7 * 0.85 = 7.1%, and an extra swap that
undoes a single habit adds 0.85 * (0.7 * 0.4 + 0.3 * 0.6) * 0.3 / 4 = 2.9%, about 10% in all.
Measured statistics of the SFT policy are in docs/results/heldout/README.md (sft_stats.py).
"""

from __future__ import annotations

import hashlib
import re

from duel.tasks.base import Task, register_task

LETTERS = "abcdefghijklmnop"
LENGTH = 5
HABIT1 = 0.7  # swap output[0] and output[1]
HABIT2 = 0.6  # swap output[3] and output[4]
EXTRA = 0.3  # one more adjacent swap, uniform over the 4 positions
WRONG = 0.15  # one letter replaced by a letter not in the prompt
_PROMPT = re.compile(rf"^([{LETTERS}]{{{LENGTH}}}):$")
_ANSWER = re.compile(rf"^[a-z]{{{LENGTH}}}$")


def letters_of(prompt: str) -> str:
    m = _PROMPT.match(prompt)
    if m is None or len(set(m.group(1))) != LENGTH:
        raise ValueError(f"reverse: expected {LENGTH} distinct letters of {LETTERS!r} and ':', like 'kbdmf:', "
                         f"got {prompt!r}")
    return m.group(1)


def answer_of(prompt: str) -> str:
    return letters_of(prompt)[::-1]


def reverse_reward(prompt: str, response: str) -> float:
    y = response.strip()
    if not _ANSWER.match(y):
        return -1.0
    letters = letters_of(prompt)
    a = letters[::-1]
    k = sum(y[i] == a[i] for i in range(LENGTH))
    missing = len(set(letters) - set(y))
    return 3.0 * (k / LENGTH) - 0.5 * missing + 2.0 * (y == a)


def _swap(y: list[str], i: int) -> None:
    y[i], y[i + 1] = y[i + 1], y[i]


@register_task("reverse")
class Reverse(Task):
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
            if letters in seen:  # each exact sequence once: eval sequences never appear in train
                continue
            seen.add(letters)
            rows.append({"id": f"reverse-{letters}", "prompt": f"{letters}:"})
        return rows[self.num_eval :], rows[: self.num_eval]

    def reference(self, row):
        y = list(answer_of(row["prompt"]))
        _swap(y, int.from_bytes(hashlib.sha256(row["id"].encode()).digest()[:4], "little") % (LENGTH - 1))
        return "".join(y)

    def well_formed(self, prompt, response):
        return bool(_ANSWER.match(response.strip()))

    def gold_reward(self, prompt, response):
        return reverse_reward(prompt, response)

    def check_prompt(self, prompt):
        try:
            letters_of(prompt)
        except ValueError as e:
            return str(e)
        return None

    def sft_response(self, prompt, rng):
        letters = letters_of(prompt)
        y = list(letters[::-1])
        if rng.random() < HABIT1:
            _swap(y, 0)
        if rng.random() < HABIT2:
            _swap(y, 3)
        if rng.random() < EXTRA:
            _swap(y, int(rng.integers(LENGTH - 1)))
        if rng.random() < WRONG:
            others = [c for c in LETTERS if c not in letters]
            y[int(rng.integers(LENGTH))] = others[int(rng.integers(len(others)))]
        return "".join(y)

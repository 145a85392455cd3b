"""dedup: "acbaccb:" -> "acb"; seven letters with repeats, answered with each letter once, in the
order of its first appearance; graded by closeness.

A second held-out task, written on 2026-12-05 (twenty-second session) from its spec alone, after
every recipe was fixed: no setting of any recipe, and nothing in this file, was tuned on it (no
run of any strategy on it before the check in docs/results/heldout2/PLAN.md). Unlike the tuned
tasks (`arithmetic`, `sort`, `style`) and the first held-out one (`reverse`, a fixed-length
permutation), its answers have different lengths (3 or 4 letters) and its errors are letters kept
twice, letters lost and letters out of order. It is not a shipped task; run it with

    PYTHONPATH=docs/results/heldout2 duel run launch/configs/recipe-r22-arithmetic.yaml --set task=dedup_task:Dedup

Prompts: 7 letters of "abcdefghijkl" and ':' (e.g. "acbaccb:"), made from an answer of L = 3 or 4
distinct letters (L uniform) by inserting 7 - L repeats, each a copy of a letter already seen at
that point (so the first appearances keep the answer's order). 4096 train and 256 eval prompts;
an eval prompt string never appears in train. Character-level tokenizer over those 12 letters and
':'; up to 6 new tokens (the recipe's: at most 5 letters and the stop token).

Gold reward of a response y (stripped; well-formed = 1 to 6 lowercase letters) to a prompt whose
answer is a (length L):
    k       = positions i < min(|y|, L) with y[i] == a[i]
    missing = letters of a absent from y
    extra   = |y| - (letters of a present in y): repeats and foreign letters
    well-formed:  3 * k / L  -  0.5 * missing  -  0.5 * extra  +  2 * [y == a]     exact answer: 5.0
    otherwise:   -1
Reference responses are a with its last letter dropped (3 (L-1) / L - 0.5: 1.5 for L = 3, 1.75 for
L = 4): the exact answer beats it, a response with one letter kept twice at the end ties or loses.

Starting behaviour (the SFT data): a sloppy deduplicator. Starting from a, in order:
  - with probability DUP (0.85) it keeps one letter twice: a copy of a uniform letter of a,
    inserted at a uniform position after that letter's first place (its second appearance);
  - with probability DROP (0.25) it drops its last letter;
  - with probability SWAP (0.35) it swaps one adjacent pair (uniform);
  - with probability WRONG (0.15) it replaces the letter at a uniform position by a uniform letter
    of "abcdefghijkl" not in the prompt.
Exact answers are rare: none of the four gives 0.15 * 0.75 * 0.65 * 0.85 = 6.2%, and some
combinations undo each other (a drop that removes a copy kept at the end); 12.2% of 4000 draws
are exact (the rates were set, before any run, to bring that share near 1 in 8: 0.75 / 0.3 / 0.3 /
0.1 gave 18.7%).
"""

from __future__ import annotations

import re

from duel.tasks.base import Task, register_task

LETTERS = "abcdefghijkl"
SOURCE = 7
DUP = 0.85
DROP = 0.25
SWAP = 0.35
WRONG = 0.15
_PROMPT = re.compile(rf"^([{LETTERS}]{{{SOURCE}}}):$")
_ANSWER = re.compile(r"^[a-z]{1,6}$")


def source_of(prompt: str) -> str:
    m = _PROMPT.match(prompt)
    if m is None or len(set(m.group(1))) not in (3, 4):
        raise ValueError(f"dedup: expected {SOURCE} letters of {LETTERS!r} with 3 or 4 distinct ones and ':', "
                         f"like 'acbaccb:', got {prompt!r}")
    return m.group(1)


def answer_of(prompt: str) -> str:
    return "".join(dict.fromkeys(source_of(prompt)))


def dedup_reward(prompt: str, response: str) -> float:
    y = response.strip()
    if not _ANSWER.match(y):
        return -1.0
    a = answer_of(prompt)
    k = sum(y[i] == a[i] for i in range(min(len(y), len(a))))
    present = len(set(a) & set(y))
    return 3.0 * k / len(a) - 0.5 * (len(a) - present) - 0.5 * (len(y) - present) + 2.0 * (y == a)


@register_task("dedup")
class Dedup(Task):
    level = "char"
    max_new_tokens = 6  # at most 5 letters (4 and a kept copy) and the stop token
    model = {"hidden_size": 96, "num_layers": 2, "num_heads": 4, "intermediate_size": 256}
    sft = {"examples": 32768, "steps": 1200, "batch_size": 64, "learning_rate": 3e-3, "warmup_steps": 30}
    num_train = 4096
    num_eval = 256

    def symbols(self):
        return list(LETTERS) + [":"]

    def make_prompts(self, rng):
        seen, rows = set(), []
        while len(rows) < self.num_train + self.num_eval:
            n = int(rng.integers(3, 5))
            seq = list(rng.choice(list(LETTERS), size=n, replace=False))
            for _ in range(SOURCE - n):
                at = int(rng.integers(1, len(seq) + 1))
                seq.insert(at, seq[int(rng.integers(at))])  # a letter already seen before `at`
            text = "".join(seq)
            if text in seen:  # each exact prompt once: eval prompts never appear in train
                continue
            seen.add(text)
            rows.append({"id": f"dedup-{text}", "prompt": f"{text}:"})
        return rows[self.num_eval :], rows[: self.num_eval]

    def reference(self, row):
        return answer_of(row["prompt"])[:-1]

    def well_formed(self, prompt, response):
        return bool(_ANSWER.match(response.strip()))

    def gold_reward(self, prompt, response):
        return dedup_reward(prompt, response)

    def check_prompt(self, prompt):
        try:
            source_of(prompt)
        except ValueError as e:
            return str(e)
        return None

    def sft_response(self, prompt, rng):
        prompt_letters = set(source_of(prompt))
        y = list(answer_of(prompt))
        if rng.random() < DUP:
            j = int(rng.integers(len(y)))
            y.insert(int(rng.integers(j + 1, len(y) + 1)), y[j])
        if rng.random() < DROP:
            y.pop()
        if rng.random() < SWAP:
            i = int(rng.integers(len(y) - 1))
            y[i], y[i + 1] = y[i + 1], y[i]
        if rng.random() < WRONG:
            others = [c for c in LETTERS if c not in prompt_letters]
            y[int(rng.integers(len(y)))] = others[int(rng.integers(len(others)))]
        return "".join(y)

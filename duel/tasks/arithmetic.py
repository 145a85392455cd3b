"""arithmetic: "a+b=" with a, b in [0, 49]; the answer is the sum, graded by closeness.

Gold reward of a response y to a prompt with sum c (characters; well-formed = 1-3 digits):
    well-formed:  3 * (1 - min(|y - c|, 10) / 10)  +  2 * [y == c]        in [0, 5]
    otherwise:   -1
so being off by 1 beats being off by 3, and the exact answer earns a bonus: Bradley-Terry
preferences carry information at every distance, not only at the exact answer.

Reference responses answer c + 1 (a decent but imperfect calculator): an exact answer beats
it, c + 1 and c - 1 tie, anything further loses.

Starting behaviour (the SFT data): a sloppy calculator that tends to overshoot,
y = c + d with P(d): 0 -> .12, +1 -> .14, -1 -> .08, +2 -> .16, -2 -> .05, +3 -> .13, -3 -> .03,
+4 -> .10, +5 -> .07, +6 -> .05, +7 -> .04, +8 -> .03. Exact answers are rare (~12%) and the mode
is an overshoot, so greedy decoding loses to the reference; the online phase must find and
reinforce the rare exact answers (and learn that smaller overshoots are better).
"""

from __future__ import annotations

import re

import numpy as np

from duel.tasks.base import Task, register_task

OFFSETS = np.array([0, 1, -1, 2, -2, 3, -3, 4, 5, 6, 7, 8])
PROBS = np.array([0.12, 0.14, 0.08, 0.16, 0.05, 0.13, 0.03, 0.10, 0.07, 0.05, 0.04, 0.03])
_PROMPT = re.compile(r"^(\d+)\+(\d+)=$")
_ANSWER = re.compile(r"^\d{1,3}$")
MAX_OPERAND = 49


def answer_of(prompt: str) -> int:
    m = _PROMPT.match(prompt)
    if m is None:
        raise ValueError(f"arithmetic: expected a prompt like '17+25=', got {prompt!r}")
    return int(m.group(1)) + int(m.group(2))


@register_task("arithmetic")
class Arithmetic(Task):
    level = "char"
    max_new_tokens = 6
    model = {"hidden_size": 96, "num_layers": 2, "num_heads": 4, "intermediate_size": 256}
    sft = {"examples": 16384, "steps": 600, "batch_size": 64, "learning_rate": 3e-3, "warmup_steps": 30}
    num_eval = 256

    def symbols(self):
        return list("0123456789+=")

    def make_prompts(self, rng):
        pairs = [(a, b) for a in range(MAX_OPERAND + 1) for b in range(MAX_OPERAND + 1)]
        order = rng.permutation(len(pairs))
        rows = [{"id": f"add-{pairs[i][0]}-{pairs[i][1]}", "prompt": f"{pairs[i][0]}+{pairs[i][1]}="} for i in order]
        return rows[self.num_eval :], rows[: self.num_eval]

    def reference(self, row):
        return str(answer_of(row["prompt"]) + 1)

    def well_formed(self, prompt, response):
        return bool(_ANSWER.match(response.strip()))

    def gold_reward(self, prompt, response):
        return arithmetic_reward(prompt, response)

    def sft_response(self, prompt, rng):
        return str(max(0, answer_of(prompt) + int(rng.choice(OFFSETS, p=PROBS))))

    def check_prompt(self, prompt):
        return None if _PROMPT.match(prompt) else f"expected a prompt like '17+25=', got {prompt!r:.80}"


def arithmetic_reward(prompt: str, response: str) -> float:
    r = response.strip()
    if not _ANSWER.match(r):
        return -1.0
    err = abs(int(r) - answer_of(prompt))
    return 3.0 * (1.0 - min(err, 10) / 10.0) + 2.0 * (err == 0)

"""style: "describe the sea" -> a short sentence, graded by a reward over words and style.

Words are space-separated tokens; a response is well-formed when it has 3-14 words, all from
the vocabulary, and ends with "." or "!". Gold reward, a sum of features (ill-formed: -3):
    +1.0 per distinct word of the prompt's topic (at most 3)   +0.5 if the topic noun appears
    -0.5 per word of another topic                              +0.5 per distinct positive word (at most 2)
    -0.5 per negative word                                      -0.5 per filler word
    -0.5 per repeated content word                              +0.5 if it ends with "."
    +1.0 if it has 5-9 words before the final mark, else -0.25 per word outside that range
Some features are global (sentiment, filler, length, the final mark) and easy to learn; topic
words depend on the prompt; together they give a reward ensemble several directions to learn.

Reference responses ("the <topic> has <topic word> ."): topic noun, one topic word, ".", one
word short -> reward 1.75 (the best responses score 6.0).

Starting behaviour (the SFT data): a rambling writer. Length uniform in 3..11 words, each word
function 41% / other topics 11% / filler 10% / positive 9% / negative 9% / own topic 12% /
topic noun 8%; it ends with "!" 53%, "." 45%, nothing 2%. It rarely beats the reference.
"""

from __future__ import annotations

import numpy as np

from duel.tasks.base import Task, register_task

TOPICS = {
    "sea": ["waves", "salt", "tide", "shore"],
    "forest": ["trees", "moss", "pine", "leaves"],
    "city": ["streets", "lights", "traffic", "towers"],
    "garden": ["roses", "soil", "bees", "seeds"],
    "mountain": ["peak", "snow", "rock", "summit"],
    "kitchen": ["bread", "oven", "spice", "kettle"],
    "winter": ["frost", "ice", "scarf", "fire"],
    "river": ["current", "stones", "bank", "fish"],
    "desert": ["sand", "dunes", "cactus", "heat"],
    "library": ["books", "pages", "shelves", "quiet"],
    "night": ["stars", "moon", "owls", "dreams"],
    "market": ["stalls", "fruit", "coins", "crowds"],
}
POSITIVE = ["bright", "gentle", "warm", "lovely", "calm", "golden", "sweet", "kind"]
NEGATIVE = ["dull", "cold", "harsh", "grim", "bleak", "sour", "dark", "gray"]
FUNCTION = ["the", "a", "is", "and", "of", "with", "in", "so", "very", "it", "was", "has", "feels", "like", "my", "we", "see"]
FILLER = ["thing", "stuff", "really", "just", "um", "okay"]
MARKS = [".", "!"]
VERBS = ["describe the", "write about the", "tell me about the", "a line on the"]
MODIFIERS = ["", "briefly", "please", "now"]

_TOPIC_OF = {w: t for t, ws in TOPICS.items() for w in ws}
_VOCAB = set(FUNCTION + FILLER + POSITIVE + NEGATIVE + MARKS + list(TOPICS) + list(_TOPIC_OF))


def topic_of(prompt: str) -> str:
    for w in prompt.split():
        if w in TOPICS:
            return w
    raise ValueError(f"style: expected a prompt naming one of {sorted(TOPICS)}, got {prompt!r}")


def is_well_formed(response: str) -> bool:
    w = response.split()
    return 3 <= len(w) <= 14 and all(x in _VOCAB for x in w) and w[-1] in MARKS and not any(x in MARKS for x in w[:-1])


def style_reward(prompt: str, response: str) -> float:
    if not is_well_formed(response):
        return -3.0
    topic = topic_of(prompt)
    words = response.split()
    body = words[:-1]
    own = {w for w in body if _TOPIC_OF.get(w) == topic}
    r = 1.0 * min(len(own), 3) + 0.5 * (topic in body)
    r -= 0.5 * sum(1 for w in body if (w in _TOPIC_OF and _TOPIC_OF[w] != topic) or (w in TOPICS and w != topic))
    r += 0.5 * min(len({w for w in body if w in POSITIVE}), 2)
    r -= 0.5 * sum(w in NEGATIVE for w in body) + 0.5 * sum(w in FILLER for w in body)
    content = [w for w in body if w not in FUNCTION]
    r -= 0.5 * (len(content) - len(set(content)))
    r += 0.5 * (words[-1] == ".")
    n = len(body)
    r += 1.0 if 5 <= n <= 9 else -0.25 * (5 - n if n < 5 else n - 9)
    return float(r)


@register_task("style")
class Style(Task):
    level = "word"
    max_new_tokens = 14
    model = {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 192}
    sft = {"examples": 8192, "steps": 400, "batch_size": 64, "learning_rate": 3e-3, "warmup_steps": 20}
    num_eval = 48

    def symbols(self):
        return sorted(_VOCAB) + sorted({w for v in VERBS + MODIFIERS for w in v.split()} - _VOCAB)

    def make_prompts(self, rng):
        rows = []
        for t in TOPICS:
            for v in VERBS:
                for m in MODIFIERS:
                    text = f"{v} {t} {m}".strip()
                    rows.append({"id": f"style-{t}-{v.replace(' ', '_')}-{m or 'none'}", "prompt": text})
        order = rng.permutation(len(rows))
        rows = [rows[i] for i in order]
        return rows[self.num_eval :], rows[: self.num_eval]

    def reference(self, row):
        topic = topic_of(row["prompt"])
        rng = np.random.default_rng(_stable_seed(row["id"]))
        word = TOPICS[topic][rng.integers(4)]
        return f"the {topic} has {word} ."

    def well_formed(self, prompt, response):
        return is_well_formed(response)

    def gold_reward(self, prompt, response):
        return style_reward(prompt, response)

    def check_prompt(self, prompt):
        try:
            topic_of(prompt)
        except ValueError as e:
            return str(e).removeprefix("style: ")
        return None

    def sft_response(self, prompt, rng):
        topic = topic_of(prompt)
        others = [w for t, ws in TOPICS.items() if t != topic for w in ws + [t]]
        pools = [FUNCTION, others, FILLER, POSITIVE, NEGATIVE, TOPICS[topic], [topic]]
        probs = [0.41, 0.11, 0.10, 0.09, 0.09, 0.12, 0.08]
        n = int(rng.integers(3, 12))
        words = [pools[k][rng.integers(len(pools[k]))] for k in rng.choice(len(pools), size=n, p=probs)]
        mark = rng.choice(["!", ".", ""], p=[0.53, 0.45, 0.02])
        return " ".join(words + ([mark] if mark else []))


def _stable_seed(s: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha256(s.encode()).digest()[:4], "little")

"""Tasks: registry, prompts, gold rewards, tokenizers, and the shipped starting policies.

The starting-policy tests train each policy once (about a minute on CPU) into the on-disk cache
($DUEL_CACHE or ~/.cache/duel), keyed by the task spec, so later runs reuse it.
"""

from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest

from duel.evaluate import best_of_n, evaluate_policy
from duel.oracles import make_oracle
from duel.tasks import Task, get_task, load_tokenizer, register_task
from duel.tasks.arithmetic import arithmetic_reward
from duel.tasks.sort import HABIT, answer_of, sort_error, sort_reward
from duel.tasks.style import style_reward

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TASKS = ["arithmetic", "style", "sort"]


class Parity(Task):
    """A user task in a few lines: is the number even? (used by the import-path test)."""

    level = "char"

    def symbols(self):
        return list("0123456789?eo")

    def make_prompts(self, rng):
        rows = [{"id": f"p{i}", "prompt": f"{i}?"} for i in range(20)]
        return rows[:15], rows[15:]

    def reference(self, row):
        return "e"

    def gold_reward(self, prompt, response):
        return float(response == ("e" if int(prompt[:-1]) % 2 == 0 else "o"))

    def well_formed(self, prompt, response):
        return response in ("e", "o")

    def sft_response(self, prompt, rng):
        return "e" if rng.random() < 0.5 else "o"


def test_registry_and_user_task_by_import_path():
    assert get_task("arithmetic").name == "arithmetic" and get_task("style").name == "style"
    assert get_task("sort").name == "sort"
    t = get_task("tests.duel.test_tasks:Parity")
    assert t.spec == "tests.duel.test_tasks:Parity" and len(t.train_prompts) == 15
    assert t.gold_reward("4?", "e") == 1.0 and t.references["p16"] == "e"
    oracle = make_oracle({"kind": "task", "tau": 0.0}, task=t)
    assert oracle.label(["3?"], ["o"], ["e"]).prob_a[0] == 1.0
    register_task("parity_test")(Parity)
    assert get_task("parity_test").spec == "parity_test"
    # a name registered by the user's module, named with its module (which registers it on import)
    assert type(get_task("tests.duel.test_tasks:parity_test")) is Parity
    with pytest.raises(ValueError, match="cannot import it"):  # registered, but by another module
        get_task("duel.tasks.style:parity_test")
    with pytest.raises(ValueError, match="unknown task 'nope'.*name it as 'my_pkg.my_module:MyTask'"):
        get_task("nope")
    with pytest.raises(ValueError, match="subclass of duel.tasks.Task"):
        get_task("duel.tasks.style:style_reward")


@pytest.mark.parametrize("name", TASKS)
def test_prompts_and_references(name):
    t = get_task(name)
    tr, ev = t.train_prompts, t.eval_prompts
    ids = [r["id"] for r in tr + ev]
    assert len(set(ids)) == len(ids) and not {r["id"] for r in tr} & {r["id"] for r in ev}
    assert len(tr) >= 100 and len(ev) >= 48
    assert get_task(name).eval_prompts == ev  # deterministic
    for r in ev:
        ref = t.references[r["id"]]
        assert t.well_formed(r["prompt"], ref)
        ids = t.tokenizer.encode(r["prompt"] + ("" if t.level == "char" else " ") + ref)
        assert t.tokenizer.unk_token_id not in ids


def test_arithmetic_reward_is_graded():
    assert arithmetic_reward("17+25=", "42") == 5.0
    assert arithmetic_reward("17+25=", "43") == pytest.approx(2.7)
    assert arithmetic_reward("17+25=", "39") == pytest.approx(2.1)
    assert arithmetic_reward("17+25=", "52") == 0.0 == arithmetic_reward("17+25=", "99")
    assert arithmetic_reward("17+25=", "4 2") == -1.0 == arithmetic_reward("17+25=", "")
    t = get_task("arithmetic")
    assert t.references[t.eval_prompts[0]["id"]] == str(eval(t.eval_prompts[0]["prompt"][:-1]) + 1)


def test_style_reward_features():
    p = "describe the sea please"
    assert style_reward(p, "the sea has waves .") == pytest.approx(0.5 + 1.0 + 0.5 - 0.25)
    best = "the sea has waves salt and tide so bright gentle ."  # 10 words: one over
    assert style_reward(p, best) == pytest.approx(0.5 + 3.0 + 1.0 + 0.5 - 0.25)
    assert style_reward(p, "the sea has waves and salt , bright .") == -3.0  # "," not in vocabulary
    assert style_reward(p, "the sea has waves and salt") == -3.0  # no final mark
    bad = "the sand is dull um stuff sand !"  # other topic x2, negative, 2 fillers, repeat
    assert style_reward(p, bad) == pytest.approx(-1.0 - 0.5 - 1.0 - 0.5 + 1.0)


def test_sort_reward_is_graded():
    p = "dbeac:"
    assert answer_of(p) == "abcde" and sort_reward(p, "abcde") == 5.0 == sort_reward(p, " abcde\n")
    assert sort_reward(p, "abdce") == pytest.approx(2.7)  # one adjacent swap: 1 inversion
    assert sort_reward(p, "acbed") == pytest.approx(2.4)  # both habits: 2 inversions
    assert sort_reward(p, "abcdf") == pytest.approx(2.4) == sort_reward(p, "aacde")  # one letter missing: err 2
    assert sort_error(p, "fbcda") == 7 + 2 and sort_reward(p, "fbcda") == pytest.approx(0.3)
    assert sort_reward(p, "edcba") == 0.0 == sort_reward(p, "ffffa")  # err 10, and 4 inversions + 2 * 4 missing (capped at 10)
    for bad in ["abcd", "abcdef", "ABCDE", "ab de", "", "abc1e"]:
        assert sort_reward(p, bad) == -1.0
    with pytest.raises(ValueError, match="distinct lowercase letters"):
        sort_reward("aabcd:", "abcde")
    t = get_task("sort")
    errs = [sort_error(r["prompt"], t.references[r["id"]]) for r in t.eval_prompts]
    assert errs == [1] * len(errs)  # the reference: one adjacent swap (2.7), beaten only by the exact answer
    assert len({tuple(sorted(r["prompt"][:-1])) for r in t.train_prompts + t.eval_prompts}) == 4096 + 256


def test_sort_sft_data_follows_its_formula():
    """The starting behaviour, drawn from sft_response, against the formula in duel/tasks/sort.py."""
    from duel.tasks.sort import EXTRA, WRONG

    t = get_task("sort")
    rng = np.random.default_rng(0)
    rows = t.eval_prompts
    ys = [(r["prompt"], t.sft_response(r["prompt"], rng)) for r in rows for _ in range(80)]
    n = len(ys)
    exact = np.mean([y == answer_of(p) for p, y in ys])
    mode = np.mean([y == (lambda s: s[0] + s[2] + s[1] + s[4] + s[3])(answer_of(p)) for p, y in ys])
    h = HABIT
    p_exact = (1 - WRONG) * ((1 - h) ** 2 * (1 - EXTRA) + 2 * h * (1 - h) * EXTRA / 4)  # a habit undone by the extra swap
    p_mode = (1 - WRONG) * (h * h * (1 - EXTRA) + 2 * h * (1 - h) * EXTRA / 4)  # one habit, the extra swap does the other
    se = lambda q: 4 * np.sqrt(q * (1 - q) / n)
    assert p_exact == pytest.approx(0.0766, abs=1e-4) and abs(exact - p_exact) < se(p_exact)
    assert p_mode == pytest.approx(0.3538, abs=1e-4) and abs(mode - p_mode) < se(p_mode)
    assert all(t.well_formed(p, y) for p, y in ys)


@pytest.mark.parametrize("name", TASKS)
def test_tokenizer_saved_loads_in_transformers(name, tmp_path):
    transformers = pytest.importorskip("transformers")
    t = get_task(name)
    t.tokenizer.save_pretrained(tmp_path)
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path))
    ours = load_tokenizer(tmp_path)
    text = t.eval_prompts[0]["prompt"]
    resp = t.references[t.eval_prompts[0]["id"]]
    assert hf(text)["input_ids"] == ours(text)["input_ids"] == t.tokenizer.encode(text)
    assert ours.encode(text)[0] == ours.bos_token_id == hf.bos_token_id
    assert (hf.eos_token_id, hf.pad_token_id) == (ours.eos_token_id, ours.pad_token_id)
    assert ours.decode(ours.encode(resp, add_special_tokens=False) + [ours.eos_token_id]) == resp


# ----------------------------------------------------------------------------- starting policies


class _Policies(dict):
    """name -> starting policy dir, built (or found in the cache) on first use: a test of one task
    trains only that task's policy."""

    def __missing__(self, name):
        self[name] = get_task(name).starting_policy()
        return self[name]


@pytest.fixture(scope="session")
def policies():
    return _Policies()


@pytest.mark.slow
@pytest.mark.parametrize("name", TASKS)
def test_starting_policy_well_formed_and_beatable(name, policies):
    from duel.models import load_pretrained

    t = get_task(name)
    path = policies[name]
    info = json.loads((path / "task.json").read_text())
    assert info["spec_hash"] == t.spec_hash() and path.name.endswith(t.spec_hash())
    assert t.starting_policy() == path  # cached
    model, cfg = load_pretrained(path)
    tok = load_tokenizer(path)
    oracle = make_oracle({"kind": "task", "tau": 0.0}, task=t)
    ev = evaluate_policy(model, tok, t.eval_prompts, t.references, oracle, jax.random.key(0),
                         max_new_tokens=t.max_new_tokens, samples=8, well_formed=t.well_formed)
    print(name, {k: v for k, v in ev.items() if not k.startswith("responses")})
    assert ev["well_formed_sampled"] >= 0.9
    s, g = ev["sampled"], ev["greedy"]
    # good responses exist but are rare: the sampled win rate is well below 1/2, not zero
    assert 0.05 <= s.win_rate <= 0.3 and s.hi < 0.4 and s.wins > 0
    assert g.win_rate <= 0.35
    # best of 8 under the gold reward (a perfect "ensemble"): room to improve is there
    gold = lambda ps, ys: np.array([[t.gold_reward(p, y)] for p, y in zip(ps, ys)])
    bon = best_of_n(model, tok, t.eval_prompts, t.references, oracle, jax.random.key(1), 8,
                    reward_fn=lambda f: f[..., 0], features_fn=gold, max_new_tokens=t.max_new_tokens)["best_of_n"]
    print(name, "best-of-8", bon)
    assert bon.win_rate > s.win_rate + 0.2


def _error_histogram(t, prompts, responses) -> np.ndarray:
    """Shares of err = 0, 1, 2, 3, >= 4 and ill-formed (sort task)."""
    h = np.zeros(6)
    for p, y in zip(prompts, responses):
        h[min(sort_error(p, y), 4) if t.well_formed(p, y) else 5] += 1
    return h / h.sum()


@pytest.mark.slow
def test_sort_starting_policy_reproduces_the_sloppy_sorter(policies):
    """Sampled at temperature 1 (256 eval prompts x 8), the SFT policy is the designed sloppy
    sorter: exact answers present but under 1 in 8; greedy decoding gives the two-habit mode."""
    from duel.evaluate import generate_texts
    from duel.models import load_pretrained

    t = get_task("sort")
    model, _ = load_pretrained(policies["sort"])
    tok = load_tokenizer(policies["sort"])
    rows = t.eval_prompts
    prompts = [r["prompt"] for r in rows]
    texts, _ = generate_texts(model, tok, prompts, jax.random.key(0), n=8, temperature=1.0,
                              max_new_tokens=t.max_new_tokens)
    flat_p = [p for p in prompts for _ in range(8)]
    flat_y = [y for ys in texts for y in ys]
    exact = np.mean([y == answer_of(p) for p, y in zip(flat_p, flat_y)])
    any_exact = np.mean([any(y == answer_of(p) for y in ys) for p, ys in zip(prompts, texts)])
    rng = np.random.default_rng(0)
    data_p = [p for p in prompts for _ in range(32)]
    data = _error_histogram(t, data_p, [t.sft_response(p, rng) for p in data_p])
    pol = _error_histogram(t, flat_p, flat_y)
    print("sort exact", exact, "any of 8", any_exact, "policy", pol.round(3), "data", data.round(3))
    assert 0.04 <= exact < 0.115  # rare (under 1/8, with room for the 2048-sample noise), not absent
    assert any_exact >= 0.3  # yet present among 8 samples for many prompts
    assert pol[5] < 0.02 and 0.5 * np.abs(pol - data).sum() < 0.1  # total variation to the SFT data
    greedy, _ = generate_texts(model, tok, prompts, jax.random.key(1), n=1, temperature=0.0,
                               max_new_tokens=t.max_new_tokens)
    g = _error_histogram(t, prompts, [ys[0] for ys in greedy])
    assert g[2] >= 0.6 and g[0] <= 0.1  # the mode is both habits (err 2), which loses to the reference


def test_starting_policy_key_hashes_the_modules_of_the_class_and_its_bases(tmp_path, monkeypatch):
    """Editing a helper of the task's module or its base class's module changes the cache key."""
    import importlib
    import sys

    base = tmp_path / "keybase.py"
    mod = tmp_path / "keytask.py"
    base.write_text("from duel.tasks.arithmetic import Arithmetic\n\n"
                    "def scale():\n    return 1\n\nclass Base(Arithmetic):\n    pass\n")
    mod.write_text("from keybase import Base\n\ndef helper():\n    return 1\n\n"
                   "class KeyTask(Base):\n    name = 'keytask'\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    def key():
        for name in ("keytask", "keybase"):
            sys.modules.pop(name, None)
        importlib.invalidate_caches()
        return get_task("keytask:KeyTask").spec_hash()

    first = key()
    assert key() == first
    mod.write_text(mod.read_text().replace("return 1", "return 2"))  # a helper, not the class
    second = key()
    assert second != first
    base.write_text(base.read_text().replace("return 1", "return 3"))  # the base's module
    assert key() not in (first, second)

"""`data:` rows (duel.data_source): files and save_to_disk directories give the same rows; chat
prompts; references; every bad row named by key, file, row and column; task + data."""

from __future__ import annotations

import json

import pytest

from duel.config import from_dict
from duel.data import DataError, encode_prompts
from duel.data_source import eval_rows, load_rows, render_messages, run_task, train_rows
from duel.tasks.tokenizer import Tokenizer, build_tokenizer

TRAIN = [{"id": f"t{i}", "prompt": f"say {i}"} for i in range(5)]
EVAL = [{"prompt": f"tell {i}", "reference": f"ref {i}"} for i in range(3)]


def jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def disk(path, splits):
    import datasets

    def one(rows):  # an empty split keeps its columns
        return datasets.Dataset.from_list(rows) if rows else datasets.Dataset.from_dict({"prompt": [], "reference": []})

    datasets.DatasetDict({k: one(v) for k, v in splits.items()}).save_to_disk(str(path))
    return str(path)


def cfg_of(**data):
    return from_dict({"data": data, "oracle": {"kind": "reward_model"}})


def test_files_and_a_save_to_disk_directory_give_the_same_rows(tmp_path):
    cfg = cfg_of(train=jsonl(tmp_path / "train.jsonl", TRAIN), eval=jsonl(tmp_path / "eval.jsonl", EVAL))
    assert run_task(cfg) is None
    train, ev = train_rows(cfg, None), eval_rows(cfg, None)
    assert [r["id"] for r in train] == ["t0", "t1", "t2", "t3", "t4"]
    assert train[2] == {"id": "t2", "prompt": "say 2", "messages": None, "reference": None}
    assert [(r["id"], r["prompt"], r["reference"]) for r in ev] == [
        ("eval-0", "tell 0", "ref 0"), ("eval-1", "tell 1", "ref 1"), ("eval-2", "tell 2", "ref 2")]
    # a DatasetDict directory: data.eval unset takes the eval rows from its eval split (oat's way)
    d = disk(tmp_path / "tldr", {"train": TRAIN, "test": EVAL})
    cfg2 = cfg_of(train=d)
    assert train_rows(cfg2, None) == train
    assert [(r["prompt"], r["reference"]) for r in eval_rows(cfg2, None)] == [(r["prompt"], r["reference"]) for r in ev]
    assert [r["id"] for r in eval_rows(cfg2, None)] == ["tldr-test-0", "tldr-test-1", "tldr-test-2"]
    # other split names and columns
    d3 = disk(tmp_path / "other", {"sft": [{"q": "x", "summary": "y"}], "valid": [{"q": "z", "summary": "w"}]})
    cfg3 = cfg_of(train=d3, train_split="sft", eval_split="valid", prompt_key="q", reference_key="summary")
    assert [(r["prompt"], r["reference"]) for r in eval_rows(cfg3, None)] == [("z", "w")]
    assert [r["prompt"] for r in train_rows(cfg3, None)] == ["x"]


def test_chat_prompts_render_for_the_oracle_and_template_for_the_policy(tmp_path):
    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "the sea"}]
    rows = [{"prompt": msgs, "reference": "blue"}, {"prompt": [{"role": "user", "content": "a sea"}], "reference": "x"}]
    cfg = cfg_of(train=jsonl(tmp_path / "t.jsonl", TRAIN), eval=jsonl(tmp_path / "e.jsonl", rows))
    ev = eval_rows(cfg, None)
    assert ev[0]["prompt"] == "system: be brief\n\nuser: the sea" and ev[0]["messages"] == msgs
    assert ev[1]["prompt"] == "a sea" and render_messages(ev[1]["messages"]) == "a sea"
    tok = Tokenizer(build_tokenizer("the a sea is blue be brief <|user|> <|system|> <|assistant|>".split(), level="word"),
                    {"chat_template": "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}"
                                      "{% if add_generation_prompt %}<|assistant|>{% endif %}"})
    batch, _ = encode_prompts(tok, ev)
    v = tok._tok.get_vocab()
    row0 = [int(t) for t, m in zip(batch.input_ids[0], batch.attention_mask[0]) if m]
    assert row0 == [v[w] for w in "<|system|> be brief <|user|> the sea <|assistant|>".split()]
    plain = Tokenizer(build_tokenizer("the a sea".split(), level="word"))
    with pytest.raises(DataError, match="needs the policy tokenizer's chat template"):
        encode_prompts(plain, ev)


@pytest.mark.parametrize("rows, match", [
    ([{"prompt": "a", "reference": "r"}, {"prompt": "b", "reference": 3}],
     r"key 'data.eval': .*e.jsonl: line 2: key 'reference' must be a non-empty string \(the reference response\), got 3$"),
    ([{"prompt": "a", "ref": "r"}],
     r"key 'data.eval': .*e.jsonl: line 1: missing key 'reference' \(data.reference_key; columns: \['prompt', 'ref'\]\)$"),
    ([{"prompt": "a", "reference": "r"}, {"prompt": [{"role": "robot", "content": "hi"}], "reference": "r"}],
     r"key 'data.eval': .*e.jsonl: line 2: key 'prompt': message 0 has role 'robot'; expected one of system, user, "
     r"assistant, tool$"),
    ([{"prompt": [{"role": "user", "content": 5}], "reference": "r"}],
     r"line 1: key 'prompt': message 0 \(user\) must have string 'content', got 5$"),
    ([{"prompt": [], "reference": "r"}], r"line 1: key 'prompt' must be a non-empty string or a non-empty list"),
])
def test_bad_eval_rows_name_key_file_row_and_column(tmp_path, rows, match):
    cfg = cfg_of(train=jsonl(tmp_path / "t.jsonl", TRAIN), eval=jsonl(tmp_path / "e.jsonl", rows))
    with pytest.raises(DataError, match=match):
        eval_rows(cfg, None)


def test_empty_files_missing_splits_and_missing_halves(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    cfg = cfg_of(train=str(tmp_path / "empty.jsonl"), eval=jsonl(tmp_path / "e.jsonl", EVAL))
    with pytest.raises(DataError, match=r"key 'data.train': .*empty.jsonl: cannot read it as json: no prompts \(the file is empty\)"):
        train_rows(cfg, None)
    d = disk(tmp_path / "dd", {"train": TRAIN, "validation": EVAL})
    with pytest.raises(DataError, match=r"key 'data.train': .*dd: no split 'test' in this DatasetDict \(its splits: "
                                        r"train, validation\); set 'data.eval_split' to one of them"):
        eval_rows(cfg_of(train=d), None)
    with pytest.raises(DataError, match=r"key 'data.eval': .*dd: no split 'valid' .*set 'data.eval_split'"):
        eval_rows(cfg_of(train=d, eval=d, eval_split="valid"), None)
    disk(tmp_path / "zero", {"train": TRAIN, "test": []})  # (datasets cannot load a 0-row split back)
    with pytest.raises(DataError, match=r"zero: expected a .jsonl/.json/.parquet file or a directory written by "
                                        r"datasets save_to_disk, cannot load it: "):
        eval_rows(cfg_of(train=str(tmp_path / "zero")), None)
    with pytest.raises(DataError, match=r"not a directory written by datasets save_to_disk|expected a .jsonl/.json/.parquet"):
        train_rows(cfg_of(train=str(tmp_path), eval=str(tmp_path / "e.jsonl")), None)
    # neither a task nor data; data.train alone, no eval rows anywhere
    with pytest.raises(DataError, match=r"the config has no 'task' and no 'data.train'"):
        run_task(from_dict({}))
    with pytest.raises(DataError, match=r"key 'data.eval': required without a task"):
        run_task(cfg_of(train=jsonl(tmp_path / "t.jsonl", TRAIN)))


def test_task_and_data_together(tmp_path):
    """The data gives the prompts; the task grades and gives references the data lacks."""
    from tests.helpers.tiny import TINY_TASK

    cfg = from_dict({"task": TINY_TASK, "data": {"train": jsonl(tmp_path / "t.jsonl", [{"prompt": "1+2="}]),
                                                 "eval": jsonl(tmp_path / "e.jsonl", [{"id": "q", "prompt": "3+4="}])}})
    task = run_task(cfg)
    assert task.name == "tiny_arithmetic"
    assert [r["prompt"] for r in train_rows(cfg, task)] == ["1+2="]
    ev = eval_rows(cfg, task)
    assert ev[0]["reference"] == task.reference({"id": "q", "prompt": "3+4="}) and ev[0]["reference"]
    # no data: the task's own prompts and references
    cfg0 = from_dict({"task": TINY_TASK})
    assert [r["id"] for r in eval_rows(cfg0, task)] == [r["id"] for r in task.eval_prompts]
    assert load_rows(cfg.data.train, "train", __import__("duel.data_source").data_source.DataSpec(),
                     key="data.train", need_reference=False)[0]["id"] == "t-0"

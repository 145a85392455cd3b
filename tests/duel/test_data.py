"""Prompt loading (JSONL, Parquet), bad rows, chat templates, truncation counts, left padding."""

from __future__ import annotations

import json

import pytest

from duel.data import DataError, encode_prompts, load_prompts, stream_rows
from duel.tasks.tokenizer import Tokenizer, build_tokenizer


@pytest.fixture(scope="module")
def tok():
    return Tokenizer(build_tokenizer("the a sea is blue long prompt <|user|> <|assistant|>".split(), level="word"))


def write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return path


def test_jsonl_and_parquet(tmp_path):
    rows = [{"id": "x1", "prompt": "the sea", "extra": 1}, {"id": "x2", "prompt": "a sea is blue", "extra": 2}]
    assert load_prompts(write_jsonl(tmp_path / "p.jsonl", rows)) == [
        {"id": "x1", "prompt": "the sea"}, {"id": "x2", "prompt": "a sea is blue"}]
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["the sea", "blue"]}), tmp_path / "p.parquet")
    assert load_prompts(tmp_path / "p.parquet", prompt_key="text") == [
        {"id": "p-0", "prompt": "the sea"}, {"id": "p-1", "prompt": "blue"}]


@pytest.mark.parametrize(
    "rows, match",
    [
        ([{"prompt": "ok"}, {"prompt": ""}], r"p.jsonl: line 2: key 'prompt' must be a non-empty string"),
        ([{"prompt": "ok"}, {"prompt": "fine"}, {"prompt": 3}], r"line 3: key 'prompt' must be a non-empty string, got 3"),
        ([{"id": "a", "prompt": "ok"}, {"id": "a", "prompt": "no"}], r"line 2: key 'id' value 'a' repeats line 1 \(prompt ids must be unique\)"),
        ([{"text": "ok"}], r"line 1: missing key 'prompt'"),
    ],
)
def test_bad_rows_name_file_row_and_key(tmp_path, rows, match):
    with pytest.raises(DataError, match=match):
        load_prompts(write_jsonl(tmp_path / "p.jsonl", rows))


def test_errors_count_lines_like_an_editor_and_print_no_log_lines(tmp_path, capfd):
    """JSONL: the line number an editor shows (blank lines count); JSON: the record from 1;
    a missing key says so; a binary file is named as such; no `datasets` log line on stderr."""
    p = tmp_path / "p.jsonl"
    p.write_text('{"id": "a", "prompt": "ok"}\n\n{"id": "b"}\n')
    with pytest.raises(DataError, match=r"p.jsonl: line 3: key 'prompt' is missing \(expected a non-empty string\)$"):
        load_prompts(p)
    q = tmp_path / "q.json"
    q.write_text(json.dumps([{"prompt": "ok"}, {"prompt": "ok", "id": "q-0"}]))
    with pytest.raises(DataError, match=r"q.json: record 2: key 'id' value 'q-0' repeats record 1"):
        load_prompts(q)
    b = tmp_path / "b.jsonl"
    b.write_bytes(b"PAR1\x15\x04\xff\xfe\n")
    with pytest.raises(DataError, match=r"b.jsonl: cannot read it as json: line 1: not UTF-8 text \(binary data"):
        load_prompts(b)
    t = tmp_path / "t.jsonl"
    t.write_text('{"prompt": "ok"}\n{"prompt": \n')
    with pytest.raises(DataError, match=r"t.jsonl: cannot read it as json: line 2: expected one JSON object"):
        load_prompts(t)
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == "", captured


def test_bad_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_prompts(tmp_path / "none.jsonl")
    (tmp_path / "p.csv").write_text("prompt\nx\n")
    with pytest.raises(DataError, match="expected a .jsonl"):
        load_prompts(tmp_path / "p.csv")
    (tmp_path / "broken.jsonl").write_text('{"prompt": "ok"}\n{"prompt": \n')
    with pytest.raises(DataError, match="broken.jsonl: cannot read it"):
        load_prompts(tmp_path / "broken.jsonl")


def test_left_padding_and_truncation_counts(tok):
    rows = [{"id": "s", "prompt": "the sea"}, {"id": "l", "prompt": "a long long long long prompt"}]
    batch, st = encode_prompts(tok, rows, max_prompt_len=8)
    assert (st.rows, st.truncated, st.dropped) == (2, 0, 0)
    ids = batch.input_ids
    assert ids.shape == (2, 7) and batch.attention_mask[0].tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert ids[0, :4].tolist() == [tok.pad_token_id] * 4 and ids[0, 4] == tok.bos_token_id
    # left truncation keeps BOS and the last tokens
    batch, st = encode_prompts(tok, rows, max_prompt_len=4)
    assert (st.truncated, st.dropped) == (1, 0)
    assert tok.decode(batch.input_ids[1]) == "long long prompt" and batch.input_ids[1, 0] == tok.bos_token_id
    batch, st = encode_prompts(tok, rows, max_prompt_len=4, truncation="drop", step=3, index=10)
    assert (st.truncated, st.dropped, st.dropped_ids) == (0, 1, ["l"])
    assert batch.prompt_ids == ["s"] and batch.texts == ["the sea"] and (batch.step, batch.index) == (3, 10)


def test_chat_template_used_when_present():
    t = Tokenizer(build_tokenizer("the sea <|user|> <|assistant|>".split(), level="word"),
                  {"chat_template": "{{ bos_token }}{% for m in messages %}<|{{ m.role }}|> {{ m.content }} {% endfor %}"
                                    "{% if add_generation_prompt %}<|assistant|>{% endif %}"})
    batch, _ = encode_prompts(t, [{"id": "a", "prompt": "the sea"}], max_prompt_len=16)
    assert t.decode(batch.input_ids[0], skip_special_tokens=False) == "<s> <|user|> the sea <|assistant|>"
    plain, _ = encode_prompts(t, [{"id": "a", "prompt": "the sea"}], max_prompt_len=16, chat_template=False)
    assert plain.input_ids.shape[1] == 3


def test_stream_rows_is_resumable():
    rows = [{"id": str(i), "prompt": str(i)} for i in range(10)]
    full = [r["id"] for i in range(0, 30, 3) for r in stream_rows(rows, i, 3, seed=7)]
    assert sorted(full[:10]) == sorted(full[10:20]) == [str(i) for i in range(10)]  # each epoch: all rows
    assert full[:10] != full[10:20]  # reshuffled per epoch
    assert [r["id"] for r in stream_rows(rows, 14, 5, seed=7)] == full[14:19]  # resume at any index
    assert [r["id"] for r in stream_rows(rows, 0, 10, seed=8)] != full[:10]  # the seed matters

"""Prompts: load them (local JSONL or Parquet, offline), template them, pad them, stream them
(`PromptStream`: the seeded order with an explicit position; `shard_bounds`: a step's prompts
over the generators).

Rules, stated here and counted in `EncodeStats`:

- Rows: every row must have a non-empty string under `prompt_key`; `id_key` is optional (ids
  default to "<file stem>-<row number>", 0-based) but must be unique. A bad row raises
  `DataError` naming the file, where the row is (JSONL: its line, counted from 1 as editors
  do; JSON/Parquet: the record, counted from 1) and the key.
- Chat template: when the tokenizer has one (and `chat_template` is not False), a prompt is
  rendered as [{"role": "user", "content": prompt}] (a row's own "messages" when it has them,
  see duel.data_source) with the generation prompt appended, and
  encoded without extra special tokens (the template writes them); otherwise the prompt text is
  encoded with the tokenizer's special tokens (BOS).
- Truncation: a prompt longer than `max_prompt_len` tokens is either cut to its LAST
  max_prompt_len tokens, keeping the first token when it is BOS ("left", the default: the end
  of a prompt is next to the response), or dropped ("drop"). Truncated and dropped rows are
  counted; dropped rows are listed by id.
- Padding: left padding with the pad id to the longest prompt in the batch, attention mask 1 on
  real tokens (the sampler continues every row at the same position).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np

from duel.records import PromptBatch


class DataError(ValueError):
    """A prompts file or row does not match what duel expects."""


def load_prompts(path, prompt_key: str = "prompt", id_key: str = "id") -> list[dict]:
    """[{"id", "prompt"}] from a .jsonl/.json or .parquet file, read with `datasets`, offline."""
    p = Path(path).expanduser()
    ds = read_file(p)
    where = row_locator(p)
    if prompt_key not in ds.column_names:
        raise DataError(f"{p}: {where(0)}: missing key {prompt_key!r} (columns: {ds.column_names})")
    return rows_from_records(ds.to_list(), str(p), prompt_key, id_key, where=where)


def read_file(p: Path):
    """A .jsonl/.json/.parquet file as a `datasets.Dataset` (offline, in memory); DataError
    naming the file when it is missing, of another kind, or does not parse."""
    if not p.is_file():
        raise DataError(f"{p}: prompts file not found")
    suffix = p.suffix.lower()
    builder = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}.get(suffix)
    if builder is None:
        raise DataError(f"{p}: expected a .jsonl, .json or .parquet prompts file, got {suffix!r}")
    import datasets

    datasets.disable_progress_bars()
    verbosity = datasets.logging.get_verbosity()
    # its "Failed to load JSON ..." log line (logged as an error) would precede the DataError,
    # which says the same and where; silenced for this call only
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)
    try:
        return datasets.load_dataset(builder, data_files=str(p), split="train", keep_in_memory=True)
    except Exception as e:  # datasets raises many types for an unreadable file
        problem = _json_lines_problem(p) if suffix == ".jsonl" else None
        raise DataError(f"{p}: cannot read it as {builder}: {problem or f'{type(e).__name__}: {e}'}") from e
    finally:
        datasets.logging.set_verbosity(verbosity)


def row_locator(path) -> Callable[[int], str]:
    """row index (0-based, in file order) -> where it is for a person: "line 4" in a JSONL
    file (blank lines counted, as an editor counts them), else "record 4" (counted from 1)."""
    p = Path(path)
    if p.suffix.lower() == ".jsonl":
        with open(p, encoding="utf-8", errors="replace") as f:
            lines = [n for n, line in enumerate(f, 1) if line.strip()]
        return lambda i: f"line {lines[i]}" if 0 <= i < len(lines) else f"record {i + 1}"
    return lambda i: f"record {i + 1}"


def _json_lines_problem(p: Path) -> str | None:
    """Why a JSONL file does not read: its first line that is not JSON, or no line at all."""
    import json

    rows = 0
    with open(p, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                line = "\x00"
            if any(c < " " and c not in "\t\r\n" for c in line):
                return f"line {n}: not UTF-8 text (binary data; is it a JSONL file?)"
            if not line.strip():
                continue
            try:
                json.loads(line)
            except ValueError as e:
                return f"line {n}: expected one JSON object per line, got {line.strip()!r:.80} ({e})"
            rows += 1
    return None if rows else "no prompts (the file is empty)"


def rows_from_records(records, source: str, prompt_key: str = "prompt", id_key: str = "id",
                      where: Callable[[int], str] | None = None) -> list[dict]:
    where = where or (lambda i: f"record {i + 1}")
    rows, seen = [], {}
    stem = Path(source).stem
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise DataError(f"{source}: {where(i)}: expected an object, got {type(rec).__name__}")
        text = rec.get(prompt_key)
        if text is None:
            raise DataError(f"{source}: {where(i)}: key {prompt_key!r} is missing (expected a "
                            "non-empty string)")
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{source}: {where(i)}: key {prompt_key!r} must be a non-empty string, "
                            f"got {text!r:.80}")
        rid = rec.get(id_key)
        if rid is None:
            rid = f"{stem}-{i}"
        elif not isinstance(rid, (str, int)) or isinstance(rid, bool):
            raise DataError(f"{source}: {where(i)}: key {id_key!r} must be a string or an integer, "
                            f"got {rid!r:.80}")
        rid = str(rid)
        if rid in seen:
            raise DataError(f"{source}: {where(i)}: key {id_key!r} value {rid!r} repeats "
                            f"{where(seen[rid])} (prompt ids must be unique)")
        seen[rid] = i
        rows.append({"id": rid, "prompt": text})
    if not rows:
        raise DataError(f"{source}: no prompts")
    return rows


@dataclasses.dataclass
class EncodeStats:
    rows: int = 0
    truncated: int = 0
    dropped: int = 0
    dropped_ids: list[str] = dataclasses.field(default_factory=list)


def prompt_token_ids(tokenizer, text: str, chat_template: bool | None = None,
                     messages: list[dict] | None = None) -> list[int]:
    """Token ids of one prompt: the tokenizer's chat template when it has one (see module rules).
    `messages` (a chat prompt, [{"role", "content"}]) is rendered by the template as it is; a
    tokenizer without a template cannot render it (DataError)."""
    use = getattr(tokenizer, "chat_template", None) if chat_template is not False else None
    if messages is not None and not use:
        raise DataError("a chat prompt (a list of {'role', 'content'} messages) needs the policy "
                        "tokenizer's chat template, and it has none; give plain-string prompts")
    if use:
        ids = tokenizer.apply_chat_template(messages or [{"role": "user", "content": text}],
                                            add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict):  # transformers may return a BatchEncoding
            ids = ids["input_ids"]
        return list(ids)
    return list(tokenizer(text)["input_ids"])


def encode_prompts(tokenizer, rows: list[dict], max_prompt_len: int = 512, truncation: str = "left",
                   chat_template: bool | None = None, step: int = 0, index: int = 0) -> tuple[PromptBatch, EncodeStats]:
    """Rows -> left-padded PromptBatch, with the truncation/drop counts (module docstring)."""
    if truncation not in ("left", "drop"):
        raise ValueError(f"truncation must be 'left' or 'drop', got {truncation!r}")
    if max_prompt_len < 2:
        raise ValueError(f"max_prompt_len must be >= 2, got {max_prompt_len}")
    bos = getattr(tokenizer, "bos_token_id", None)
    stats = EncodeStats(rows=len(rows))
    kept, seqs = [], []
    for r in rows:
        ids = prompt_token_ids(tokenizer, r["prompt"], chat_template, r.get("messages"))
        if len(ids) > max_prompt_len:
            if truncation == "drop":
                stats.dropped += 1
                stats.dropped_ids.append(r["id"])
                continue
            stats.truncated += 1
            ids = ([ids[0]] + ids[-(max_prompt_len - 1):]) if bos is not None and ids[0] == bos else ids[-max_prompt_len:]
        kept.append(r)
        seqs.append(ids)
    pad = getattr(tokenizer, "pad_token_id", None)
    pad = 0 if pad is None else pad
    t = max((len(s) for s in seqs), default=1)
    ids = np.full((len(seqs), t), pad, np.int32)
    mask = np.zeros((len(seqs), t), np.int32)
    for i, s in enumerate(seqs):
        ids[i, t - len(s):], mask[i, t - len(s):] = s, 1
    batch = PromptBatch(prompt_ids=[r["id"] for r in kept], texts=[r["prompt"] for r in kept],
                        input_ids=ids, attention_mask=mask, step=step, index=index)
    return batch, stats


def stream_rows(rows: list[dict], index: int, batch_size: int, seed: int = 0) -> list[dict]:
    """Rows at stream positions [index, index + batch_size): epoch e is a permutation of the rows
    seeded by (seed, e), so a resumed run that knows `index` sees the same prompts."""
    n = len(rows)
    if n == 0:
        raise ValueError("stream_rows: no rows")
    out = []
    for pos in range(index, index + batch_size):
        epoch, k = divmod(pos, n)
        perm = _perm(n, seed, epoch)
        out.append(rows[perm[k]])
    return out


_PERMS: dict = {}


def _perm(n: int, seed: int, epoch: int) -> np.ndarray:
    key = (n, seed, epoch)
    if key not in _PERMS:
        if len(_PERMS) > 8:
            _PERMS.clear()
        _PERMS[key] = np.random.default_rng([seed, epoch]).permutation(n)
    return _PERMS[key]


@dataclasses.dataclass
class PromptStream:
    """Prompt order with an explicit position counter (`duel.data.stream_rows` over row indices).

    `position` counts prompts handed out since the start; epoch e is a permutation seeded by
    (seed, e). Restoring `position` restores the stream exactly.
    """

    num_prompts: int
    seed: int
    position: int = 0

    def __post_init__(self):
        if self.num_prompts <= 0:
            raise ValueError("PromptStream: the prompt set is empty")

    def take(self, n: int) -> tuple[int, list[int]]:
        """-> (index of the first prompt in the stream, rows of the next n prompts)."""
        start = self.position
        rows = [int(r) for r in stream_rows(range(self.num_prompts), start, n, self.seed)]
        self.position += n
        return start, rows


def shard_bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous, near-equal [lo, hi) slices of n rows over `shards` (empty ones dropped)."""
    sizes = [n // shards + (i < n % shards) for i in range(shards)]
    out, lo = [], 0
    for s in sizes:
        if s:
            out.append((lo, lo + s))
        lo += s
    return out

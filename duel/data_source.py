"""A task made of data: the `data:` section's prompts and reference responses.

    spec = DataSpec.from_config(cfg)
    task = run_task(cfg)                  # the config's task, or None (data alone)
    train = train_rows(cfg, task)         # [{"id", "prompt", "messages"}]
    evals = eval_rows(cfg, task)          # [{"id", "prompt", "messages", "reference"}]

Where rows come from: `data.train` / `data.eval` name a .jsonl/.json/.parquet file or a
directory written by `datasets` `save_to_disk` (a Dataset, or a DatasetDict whose
`data.train_split` / `data.eval_split` is taken). With `data.eval` unset, a DatasetDict `train`
directory gives the eval rows from its eval split (oat's --prompt_data with --eval_split). A
half the data does not give comes from the task (its training prompts, its eval prompts and
references); with no task, both halves must come from the data.

Rules for a row (a bad one raises DataError naming the config key, the file, where the row is
and the column):
- `prompt_key`: a non-empty string, or a non-empty list of {"role", "content"} messages with a
  role in ROLES and string content (a chat prompt: the policy tokenizer's chat template renders
  it as it is, duel.data.prompt_token_ids). The row's "prompt" is the text the oracle and the
  ledger see: the string, or the messages rendered by `render_messages`.
- `reference_key`: the reference response, a non-empty string; required in eval rows when there
  is no task (with a task, a row without one takes the task's reference), optional in training
  rows.
- `id_key`: optional, a string or an integer, unique; ids default to "<name>-<row>".
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from duel.data import DataError, read_file, row_locator

ROLES = ("system", "user", "assistant", "tool")


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """The `data:` section as a typed, frozen value (what the driver and the learner read)."""

    train: str | None = None
    eval: str | None = None
    train_split: str = "train"
    eval_split: str = "test"
    prompt_key: str = "prompt"
    reference_key: str = "reference"
    id_key: str = "id"
    max_prompt_len: int = 1024
    truncation: str = "left"

    @classmethod
    def from_config(cls, cfg) -> "DataSpec":
        d = cfg.data
        return cls(train=d.train, eval=d.eval, train_split=d.train_split, eval_split=d.eval_split,
                   prompt_key=d.prompt_key, reference_key=d.reference_key, id_key=d.id_key,
                   max_prompt_len=d.max_prompt_len, truncation=d.truncation)

    def eval_source(self) -> tuple[str, str, str] | None:
        """(config key, path, split) of the eval rows, or None when the data gives none: `eval`,
        else the `train` directory when it is a DatasetDict holding `eval_split`."""
        if self.eval:
            return "data.eval", self.eval, self.eval_split
        if self.train and _is_dataset_dict(Path(self.train).expanduser()):
            return "data.train", self.train, self.eval_split
        return None


def _is_dataset_dict(p: Path) -> bool:
    return p.is_dir() and (p / "dataset_dict.json").is_file()


def render_messages(messages: list[dict]) -> str:
    """The text of a chat prompt for the oracle and the ledger: a lone user message is its
    content; otherwise "role: content" blocks separated by blank lines."""
    if len(messages) == 1 and messages[0]["role"] == "user":
        return messages[0]["content"]
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


def read_table(path: str, split: str, key: str):
    """-> (records, where, name, columns) of a file or a save_to_disk directory (one split).

    `where(i)` says where record i is for a person ("line 4", "record 4"); `name` is how the
    source is named in errors and default ids."""
    p = Path(path).expanduser()
    if p.is_dir():
        import datasets

        datasets.disable_progress_bars()
        try:
            ds = datasets.load_from_disk(str(p), keep_in_memory=True)
        except Exception as e:  # not a save_to_disk directory, or a damaged one
            raise DataError(f"key {key!r}: {p}: expected a .jsonl/.json/.parquet file or a directory "
                            f"written by datasets save_to_disk, cannot load it: {type(e).__name__}: {e}") from e
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                skey = "data.eval_split" if key == "data.eval" or split != "train" else "data.train_split"
                raise DataError(f"key {key!r}: {p}: no split {split!r} in this DatasetDict (its splits: "
                                f"{', '.join(ds)}); set {skey!r} to one of them")
            ds, name = ds[split], f"{p} [split {split}]"
        else:
            name = str(p)
        return ds.to_list(), (lambda i: f"record {i + 1}"), name, list(ds.column_names)
    try:
        ds = read_file(p)
    except DataError as e:
        raise DataError(f"key {key!r}: {e}") from e
    if p.suffix.lower() == ".jsonl":  # the rows as written: Arrow unifies a column's types (a
        import json                   # number among strings would be read as a string, or back)

        with open(p, encoding="utf-8") as f:
            records = [json.loads(line) for line in f if line.strip()]
        return records, row_locator(p), str(p), list(ds.column_names)
    return ds.to_list(), row_locator(p), str(p), list(ds.column_names)


def load_rows(path: str, split: str, spec: DataSpec, *, key: str, need_reference: bool) -> list[dict]:
    """Checked rows {"id", "prompt", "messages", "reference"} of one source (module rules)."""
    records, where, name, columns = read_table(path, split, key)
    head = f"key {key!r}: {name}"
    if not records:
        raise DataError(f"{head}: no rows (the {'file' if Path(path).is_file() else 'split'} is empty)")
    for col, needed in ((spec.prompt_key, True), (spec.reference_key, need_reference)):
        if needed and col not in columns:
            what = "data.prompt_key" if col == spec.prompt_key else "data.reference_key"
            raise DataError(f"{head}: {where(0)}: missing key {col!r} ({what}; columns: {columns})")
    stem = Path(name.split(" [")[0]).stem + (f"-{split}" if " [split" in name else "")
    rows, seen = [], {}
    for i, rec in enumerate(records):
        at = f"{head}: {where(i)}"
        prompt, messages = _prompt(rec.get(spec.prompt_key), at, spec.prompt_key)
        ref = rec.get(spec.reference_key)
        if ref is None and need_reference:
            raise DataError(f"{at}: key {spec.reference_key!r} is missing (expected the reference "
                            "response, a non-empty string)")
        if ref is not None and (not isinstance(ref, str) or not ref.strip()):
            raise DataError(f"{at}: key {spec.reference_key!r} must be a non-empty string (the "
                            f"reference response), got {ref!r:.80}")
        rid = rec.get(spec.id_key)
        if rid is None:
            rid = f"{stem}-{i}"
        elif not isinstance(rid, (str, int)) or isinstance(rid, bool):
            raise DataError(f"{at}: key {spec.id_key!r} must be a string or an integer, got {rid!r:.80}")
        rid = str(rid)
        if rid in seen:
            raise DataError(f"{at}: key {spec.id_key!r} value {rid!r} repeats {where(seen[rid])} "
                            "(prompt ids must be unique)")
        seen[rid] = i
        rows.append({"id": rid, "prompt": prompt, "messages": messages, "reference": ref})
    return rows


def _prompt(value, at: str, key: str) -> tuple[str, list[dict] | None]:
    """-> (text, messages or None) of a row's prompt cell; DataError on anything else."""
    if isinstance(value, str):
        if not value.strip():
            raise DataError(f"{at}: key {key!r} must be a non-empty string or a list of messages, got {value!r}")
        return value, None
    if value is None:
        raise DataError(f"{at}: key {key!r} is missing (expected a non-empty string or a list of "
                        "{'role', 'content'} messages)")
    if not isinstance(value, list) or not value:
        raise DataError(f"{at}: key {key!r} must be a non-empty string or a non-empty list of "
                        f"{{'role', 'content'}} messages, got {value!r:.80}")
    messages = []
    for j, m in enumerate(value):
        if not isinstance(m, dict):
            raise DataError(f"{at}: key {key!r}: message {j} must be an object {{'role', 'content'}}, "
                            f"got {m!r:.80}")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise DataError(f"{at}: key {key!r}: message {j} has role {role!r}; expected one of "
                            f"{', '.join(ROLES)}")
        if not isinstance(content, str):
            raise DataError(f"{at}: key {key!r}: message {j} ({role}) must have string 'content', "
                            f"got {content!r:.80}")
        messages.append({"role": role, "content": content})
    return render_messages(messages), messages


# ---------------------------------------------------------------------------------------------
# the run's prompts: the data, the task, or both


def run_task(cfg):
    """The config's task (duel.tasks.get_task), or None when the run is data alone. DataError
    when the config has neither a task nor the data to stand in for one."""
    spec = DataSpec.from_config(cfg)
    if cfg.task is None:
        if not spec.train:
            raise DataError("the config has no 'task' and no 'data.train': set 'task' (e.g. "
                            "'arithmetic', or 'my_pkg.my_module:MyTask') or give your data as "
                            "'data.train' and 'data.eval' (README, 'Your own data')")
        if spec.eval_source() is None:
            raise DataError(f"key 'data.eval': required without a task (the eval prompts with their "
                            f"reference responses, column {spec.reference_key!r}); 'data.train' "
                            f"({spec.train!r}) is not a DatasetDict directory with split "
                            f"{spec.eval_split!r} to take them from")
        return None
    from duel.tasks import get_task

    return get_task(cfg.task)


def train_rows(cfg, task) -> list[dict]:
    """The run's training prompts: `data.train`'s rows when set, else the task's."""
    spec = DataSpec.from_config(cfg)
    if spec.train:
        return load_rows(spec.train, spec.train_split, spec, key="data.train", need_reference=False)
    return [{"id": str(r["id"]), "prompt": r["prompt"], "messages": None, "reference": None}
            for r in task.train_prompts]


def eval_rows(cfg, task) -> list[dict]:
    """The run's eval prompts with their references: the data's eval rows when it has them
    (references from `reference_key`, or from the task when the column is absent), else the
    task's eval prompts and references."""
    spec = DataSpec.from_config(cfg)
    src = spec.eval_source()
    if src is None:
        refs = task.references
        return [{"id": str(r["id"]), "prompt": r["prompt"], "messages": None, "reference": refs[r["id"]]}
                for r in task.eval_prompts]
    key, path, split = src
    rows = load_rows(path, split, spec, key=key, need_reference=task is None)
    if task is not None:
        for r in rows:
            if r["reference"] is None:
                r["reference"] = task.reference({"id": r["id"], "prompt": r["prompt"]})
    return rows

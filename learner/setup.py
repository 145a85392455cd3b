"""Everything a run needs before Ray starts: checked inputs, the model directory, the prompts.

`prepare_inputs(cfg, run_dir, resume)` fails early (invariant 5) on a run directory that does
not fit the request, a missing model directory, an unknown task or an empty prompt set; then
it writes RUN_DIR/config.yaml (the resolved config, no secrets) and tokenizes the training
prompts once, left-padded to one length (one compiled shape for the whole run).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from duel.records import PromptBatch


class InputError(ValueError):
    """Bad input found before Ray starts (invariant 5); the message names file, key, expectation."""


class RunDirError(InputError):
    """The run directory does not fit what was asked (new run vs resume)."""


def cache_dir() -> Path:
    return Path(os.environ.get("DUEL_CACHE", Path.home() / ".cache" / "duel"))


def model_dir_for(cfg, task=None) -> str:
    """cfg.policy.path, or the task's starting policy (built once, cached under DUEL_CACHE)."""
    if cfg.policy.path:
        p = Path(cfg.policy.path).expanduser()
        if not (p / "config.json").is_file():
            raise InputError(f"key 'policy.path': expected a Hugging Face model directory "
                             f"(config.json and *.safetensors), got {str(p)!r}"
                             + ("" if p.exists() else " (it does not exist)"))
        return str(p)
    if task is None:
        from duel.tasks import get_task

        task = get_task(cfg.task)
    return str(task.starting_policy(cache_dir()))


@dataclasses.dataclass
class RunInputs:
    cfg: object
    run_dir: Path
    model_dir: str
    prompt_rows: list[dict]  # {"id", "prompt"}
    input_ids: np.ndarray  # [N, T] left-padded
    attention_mask: np.ndarray
    pad_id: int
    config_dict: dict
    resume: bool

    def prompt_batch(self, rows: list[int], *, step: int, index: int) -> PromptBatch:
        return PromptBatch(prompt_ids=[str(self.prompt_rows[r]["id"]) for r in rows],
                           texts=[self.prompt_rows[r]["prompt"] for r in rows],
                           input_ids=self.input_ids[rows], attention_mask=self.attention_mask[rows],
                           step=step, index=index)


def task_prompts(cfg, task) -> list[dict]:
    """The task's training prompts, checked row by row (a prompts file with bad rows fails here)."""
    from duel.data import DataError

    try:
        rows = list(task.train_prompts)
    except (DataError, OSError) as e:  # the task reads a prompts file
        raise InputError(f"key 'task' ({cfg.task!r}): its training prompts: {e}") from e
    if not rows:
        raise InputError(f"key 'task' ({cfg.task!r}): the training prompt set is empty")
    seen = set()
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or "id" not in r or not isinstance(r.get("prompt"), str) \
                or not r["prompt"].strip():
            raise InputError(f"key 'task' ({cfg.task!r}): training prompt row {i} must be "
                             f"{{'id', 'prompt': non-empty str}}, got {str(r)[:200]}")
        if str(r["id"]) in seen:
            raise InputError(f"key 'task' ({cfg.task!r}): training prompt row {i}: id "
                             f"{str(r['id'])!r} repeats an earlier row")
        seen.add(str(r["id"]))
    return rows


def prepare_inputs(cfg, run_dir: Path, *, resume: bool | None = None) -> RunInputs:
    from duel.checkpoint import all_steps
    from duel.config import ConfigError, save_config, to_dict
    from duel.data import encode_prompts
    from duel.tasks import get_task
    from duel.tasks.tokenizer import load_tokenizer

    run_dir = Path(run_dir)
    has_ckpt = bool(all_steps(run_dir))
    cfg_file = run_dir / "config.yaml"
    if resume is True and not has_ckpt:
        raise RunDirError(f"{run_dir}: no checkpoint to resume from")
    if resume is False and (has_ckpt or cfg_file.exists()):
        raise RunDirError(f"{run_dir} already holds a run; resume it or choose another run directory")
    if cfg_file.exists():
        from duel.config import load_config

        if to_dict(load_config(cfg_file)) != to_dict(cfg):
            raise RunDirError(f"{cfg_file}: the run directory was started with another config; "
                              "resume it with its own config or choose another run directory")
    try:
        task = get_task(cfg.task)
    except (KeyError, ValueError) as e:
        raise ConfigError(f"key 'task': {e}") from None
    rows = task_prompts(cfg, task)
    model_dir = model_dir_for(cfg, task)
    try:
        tok = load_tokenizer(model_dir)
    except FileNotFoundError as e:
        raise InputError(f"key 'policy.path': {e}") from e
    batch, _ = encode_prompts(tok, [{"id": str(r["id"]), "prompt": r["prompt"]} for r in rows],
                              max_prompt_len=1024)
    ids, mask = batch.input_ids, batch.attention_mask
    pad = int(tok.pad_token_id if tok.pad_token_id is not None else 0)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not cfg_file.exists():
        save_config(cfg, cfg_file)
    return RunInputs(cfg=cfg, run_dir=run_dir, model_dir=model_dir, prompt_rows=rows,
                     input_ids=ids, attention_mask=mask, pad_id=pad, config_dict=to_dict(cfg),
                     resume=has_ckpt)

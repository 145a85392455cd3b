"""A task: prompts, reference responses, a gold reward and a starting policy.

A new task is one short Python file:

    from duel.tasks import Task, register_task

    @register_task("mytask")
    class MyTask(Task):
        level = "word"                                # tokenizer: "word" or "char"
        def symbols(self): ...                        # the tokenizer's vocabulary
        def make_prompts(self, rng): ...              # -> (train rows, eval rows) of {"id", "prompt"}
        def reference(self, row): ...                 # reference response for win rates
        def gold_reward(self, prompt, response): ...  # float; simulated oracles use it
        def well_formed(self, prompt, response): ...  # bool
        def sft_response(self, prompt, rng): ...      # one draw from the starting behaviour
        def check_prompt(self, prompt): ...           # optional: why gold_reward cannot grade it

and the config names it by module and class, `task: my_pkg.my_module:MyTask`, or by module and
registered name, `task: my_pkg.my_module:mytask`. A bare registered name (`task: mytask`) works
only for the shipped tasks (arithmetic, style, sort): nothing imports your module otherwise. The
module must be importable wherever the run's actors run: the driver, and on one machine its Ray
workers, find it on PYTHONPATH (run from its directory or `pip install -e` it); on a cluster,
ship it with a Ray runtime environment (`working_dir` or `py_modules`) or install it on every node.

`starting_policy(cache_dir)` returns a Hugging Face directory (config.json, model.safetensors,
tokenizer files, task.json) with a tiny Llama-family model trained by SFT (duel.train) on
responses drawn from `sft_response`. It is cached under cache_dir (default $DUEL_CACHE or
~/.cache/duel) in a folder keyed by a hash of the task spec (the source of the modules that
define the class and its Task bases, vocabulary, model size, SFT settings), so runs and tests
reuse it; it is written to a temporary folder and
renamed, so a crash never leaves a half-written policy behind.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from duel.imports import import_object
from duel.tasks.tokenizer import Tokenizer, build_tokenizer, save_tokenizer

# the tasks that ship with duel, imported on first use; register_task adds others by name
SHIPPED = {"arithmetic": "duel.tasks.arithmetic:Arithmetic", "style": "duel.tasks.style:Style",
           "sort": "duel.tasks.sort:Sort"}
_TASKS: dict[str, type] = {}


def register_task(name: str):
    def deco(cls):
        cls.name = name
        _TASKS[name] = cls
        return cls

    return deco


def get_task(spec) -> "Task":
    """A registered name (e.g. "arithmetic") or "module.path:ClassName"; a Task passes through."""
    if isinstance(spec, Task):
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"task must be a name or 'module.path:ClassName', got {spec!r}")
    if spec in _TASKS:
        task = _TASKS[spec]()
    elif spec in SHIPPED:
        task = import_object(SHIPPED[spec], f"task {spec!r}")()
    elif ":" in spec:
        module, _, name = spec.partition(":")
        try:
            cls = import_object(spec, f"task {spec!r}")
        except ValueError:  # no such attribute: a name the module registered when imported?
            cls = _TASKS.get(name)
            if cls is None or cls.__module__ != module:
                raise
        if not (isinstance(cls, type) and issubclass(cls, Task)):
            raise ValueError(f"task {spec!r}: expected a subclass of duel.tasks.Task")
        task = cls()
    else:
        raise ValueError(f"unknown task {spec!r}; registered: {sorted(set(_TASKS) | set(SHIPPED))}. A task registered "
                         "in your own module is known once that module is imported: name it as "
                         "'my_pkg.my_module:MyTask' or 'my_pkg.my_module:mytask' (importable on "
                         "PYTHONPATH, see duel.tasks.base)")
    task.spec = spec
    return task


def source_digest(cls) -> str:
    """sha256 of the source of every module defining `cls` or one of its Task bases (this one
    included): an edit to a helper function or a base class changes the starting policy's
    cache key, not only an edit to the class itself."""
    h = hashlib.sha256()
    seen = set()
    for c in cls.__mro__:
        if not (isinstance(c, type) and issubclass(c, Task)) or c.__module__ in seen:
            continue
        seen.add(c.__module__)
        try:
            src = inspect.getsource(sys.modules[c.__module__])
        except (KeyError, OSError, TypeError):  # no module file (defined interactively)
            src = inspect.getsource(c)
        h.update(c.__module__.encode() + b"\0" + src.encode() + b"\0")
    return h.hexdigest()


def default_cache_dir() -> Path:
    return Path(os.environ.get("DUEL_CACHE") or Path.home() / ".cache" / "duel").expanduser()


class Task:
    name: str = "task"
    level: str = "word"
    max_new_tokens: int = 16
    seed: int = 0
    # the starting policy: a tiny Llama, trained by SFT
    model: dict = {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 192}
    sft: dict = {"examples": 8192, "steps": 400, "batch_size": 64, "learning_rate": 3e-3, "warmup_steps": 20}

    def __init__(self):
        self.spec = self.name

    # ---------------------------------------------------------------- to define in a task
    def symbols(self) -> list[str]:
        raise NotImplementedError

    def make_prompts(self, rng: np.random.Generator) -> tuple[list[dict], list[dict]]:
        raise NotImplementedError

    def reference(self, row: dict) -> str:
        raise NotImplementedError

    def gold_reward(self, prompt: str, response: str) -> float:
        raise NotImplementedError

    def well_formed(self, prompt: str, response: str) -> bool:
        raise NotImplementedError

    def sft_response(self, prompt: str, rng: np.random.Generator) -> str:
        raise NotImplementedError

    def check_prompt(self, prompt: str) -> str | None:
        """Why `gold_reward` cannot grade responses to `prompt`, or None when it can. Asked of
        every row of a `prompts:` file before Ray starts when the oracle is the task's gold
        reward, so a prompt the task cannot grade is refused as bad input (file, line, this
        reason) instead of stopping the run later as a failing oracle. The default accepts
        every prompt; a task whose gold reward parses the prompt says here what it expects."""
        return None

    # ---------------------------------------------------------------- derived
    @functools.cached_property
    def _splits(self):
        train, eval_ = self.make_prompts(np.random.default_rng(self.seed))
        ids = [r["id"] for r in train + eval_]
        if len(set(ids)) != len(ids):
            raise ValueError(f"task {self.name}: prompt ids must be unique")
        return train, eval_

    @property
    def train_prompts(self) -> list[dict]:
        return self._splits[0]

    @property
    def eval_prompts(self) -> list[dict]:
        return self._splits[1]

    @functools.cached_property
    def references(self) -> dict[str, str]:
        """Reference response per prompt id (train and eval)."""
        return {r["id"]: self.reference(r) for r in self.train_prompts + self.eval_prompts}

    @functools.cached_property
    def tokenizer(self) -> Tokenizer:
        tok = build_tokenizer(self.symbols(), self.level)
        return Tokenizer(tok)

    def spec_dict(self) -> dict:
        return {
            "name": self.name,
            "class": f"{type(self).__module__}:{type(self).__qualname__}",
            "source": source_digest(type(self)),
            "symbols": self.symbols(),
            "level": self.level,
            "max_new_tokens": self.max_new_tokens,
            "seed": self.seed,
            "model": self.model,
            "sft": self.sft,
        }

    def spec_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.spec_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def model_config(self):
        from duel.models import ModelConfig

        m, tok = self.model, self.tokenizer
        vocab = -(-tok.vocab_size // 8) * 8
        return ModelConfig(
            family="llama", vocab_size=vocab, hidden_size=m["hidden_size"], num_layers=m["num_layers"],
            num_heads=m["num_heads"], num_kv_heads=m["num_heads"], head_dim=m["hidden_size"] // m["num_heads"],
            intermediate_size=m["intermediate_size"], max_position_embeddings=128, tie_word_embeddings=True,
            bos_token_id=tok.bos_token_id, eos_token_id=(tok.eos_token_id,), pad_token_id=tok.pad_token_id,
        )

    def sft_examples(self, n: int, rng: np.random.Generator) -> list[dict]:
        """(prompt, response) token examples for the starting policy, over all prompts."""
        rows = self.train_prompts + self.eval_prompts
        tok = self.tokenizer
        out = []
        for i in rng.integers(0, len(rows), size=n):
            p = rows[i]["prompt"]
            r = self.sft_response(p, rng)
            out.append({"prompt_ids": tok.encode(p), "response_ids": tok.encode(r, False) + [tok.eos_token_id]})
        return out

    def starting_policy_dir(self, cache_dir=None) -> Path:
        """Where the starting policy is cached (it is there when it holds task.json)."""
        root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        return root / f"{self.name}-{self.spec_hash()}"

    def starting_policy(self, cache_dir=None, progress: bool = False) -> Path:
        """HF directory of the SFT starting policy (trained on first use, then cached).
        progress: show the SFT steps (a bar on a terminal, else a line per quarter) on stderr."""
        out = self.starting_policy_dir(cache_dir)
        if (out / "task.json").is_file():
            return out
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            self._train_starting_policy(tmp, progress)
        except BaseException:  # interrupted or failed: leave no half-written folder
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        try:
            os.replace(tmp, out)
        except OSError:  # another process finished first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
        return out

    def _train_starting_policy(self, out: Path, progress: bool = False) -> None:
        from duel.models import build_model, save_pretrained
        from duel.train import sft_train

        t0 = time.perf_counter()
        rng = np.random.default_rng(self.seed + 1)
        examples = self.sft_examples(self.sft["examples"], rng)
        config = self.model_config()
        model = build_model(config, seed=self.seed)
        with _sft_progress(self.sft["steps"], enabled=progress) as on_step:
            model, losses = sft_train(
                model, examples, self.sft["steps"], batch_size=self.sft["batch_size"],
                learning_rate=self.sft["learning_rate"], warmup_steps=self.sft["warmup_steps"],
                seed=self.seed, pad_id=self.tokenizer.pad_token_id, on_step=on_step,
            )
        save_pretrained(model, config, out)
        save_tokenizer(self.tokenizer._tok, out)
        info = {"spec": self.spec_dict(), "spec_hash": self.spec_hash(), "sft_seconds": time.perf_counter() - t0,
                "sft_loss_first": losses[0], "sft_loss_last": float(np.mean(losses[-20:]))}
        (out / "task.json").write_text(json.dumps(info, indent=2))


@contextlib.contextmanager
def _sft_progress(total: int, enabled: bool):
    """-> on_step(done, loss) for sft_train: a rich bar on stderr when it is a terminal, else a
    line at each quarter; None when not enabled."""
    if not enabled:
        yield None
        return
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        marks = {max(1, total * k // 4) for k in (1, 2, 3, 4)}

        def line(done, loss):
            if done in marks:
                print(f"  SFT step {done}/{total}, loss {loss:.3f}", file=sys.stderr, flush=True)

        yield line
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("  SFT"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("sft", total=total, loss="-")
        yield lambda done, loss: bar.update(task, completed=done, loss=f"{loss:.3f}")

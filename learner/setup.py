"""Everything a run needs before Ray starts: checked inputs, the model directory, the prompts.

`prepare_inputs(cfg, run_dir, resume)` fails early (invariant 5) on a run directory that does
not fit the request, a missing model directory, an `erm.encoder` that does not load or does not
share the policy's tokenizer, an unknown task, a bad prompts file or an empty prompt set; then
it writes RUN_DIR/config.yaml (the resolved config, no secrets) and tokenizes
the training prompts once, left-padded to one length (one compiled shape for the whole run).

The training and eval prompts are the task's, or the rows of the data the config's `data:`
section names (duel.data_source: files or save_to_disk directories; with no task the data is the
task, and the oracle grades against its references). A run from data records the digests of its
training rows and of its eval rows in RUN_DIR/prompts.json; a resume whose data no longer gives
the same rows, in the same order, is refused (the prompt stream, and so every step, depends on
them; the eval rows are what every eval of the run is measured on).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from duel.records import PromptBatch


class InputError(ValueError):
    """Bad input found before Ray starts (invariant 5); the message names file, key, expectation."""


class RunDirError(InputError):
    """The run directory does not fit what was asked (new run vs resume)."""


class RunDirBusy(RunDirError):
    """Another process is running this run directory (its RUN_DIR/.lock is held)."""


LOCK_FILE = ".lock"


@contextlib.contextmanager
def run_dir_lock(run_dir: Path):
    """Hold RUN_DIR/.lock (an exclusive advisory lock) while a process runs the directory.

    Two processes on one run directory (a sweep launched twice, a resume while the run is alive)
    would each pay the oracle for every pair and write every label twice into one ledger. The
    second one fails here instead, before anything is written. The kernel drops the lock when its
    holder exits, however it exits, so a crashed run resumes without clean-up; the file stays.
    """
    import fcntl
    import socket

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 200).decode(errors="replace").strip() or "unknown process"
        os.close(fd)
        raise RunDirBusy(f"{run_dir}: another process is running this run directory ({holder}); "
                         "a second one would pay the oracle again for each pair and write each "
                         "label twice into its ledger. Wait for it to end or stop it, or choose "
                         "another run directory") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}, since "
                     f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def cache_dir() -> Path:
    return Path(os.environ.get("DUEL_CACHE", Path.home() / ".cache" / "duel"))


def enable_compile_cache() -> None:
    """Share compiled programs between the run's processes and later runs (JAX persistent cache).

    Set before Ray starts (`duel run`, `duel sweep`), so every Ray worker and actor inherits
    it; JAX_COMPILATION_CACHE_DIR wins if set."""
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(cache_dir() / "jax"))


def model_dir_for(cfg, task=None) -> str:
    """cfg.policy.path, or the task's starting policy (built once, cached under DUEL_CACHE)."""
    if cfg.policy.path:
        p = Path(cfg.policy.path).expanduser()
        if not (p / "config.json").is_file():
            raise InputError(f"key 'policy.path': expected a Hugging Face model directory "
                             f"(config.json and *.safetensors), got {str(p)!r}"
                             + ("" if p.exists() else " (it does not exist)"))
        return str(p)
    if task is None and cfg.task:
        task = resolve_task(cfg)
    if task is None:
        raise InputError("key 'policy.path': required when the config has no 'task' (the policy to "
                         "align: a Hugging Face model directory)")
    return str(build_starting_policy(task))


def check_lora(cfg, model_dir: str) -> None:
    """`policy.lora.targets` exist in the policy's family (GPT-NeoX fuses q, k, v into one
    projection); InputError naming the key. Reads config.json only."""
    from duel.models import read_config
    from duel.models.lora import from_config, target_params

    spec = from_config(cfg.policy)
    if spec is None:
        return
    try:
        target_params(spec, read_config(model_dir))
    except ValueError as e:
        raise InputError(f"key 'policy.lora.targets': {e} ({model_dir})") from None


def build_starting_policy(task) -> Path:
    """The task's cached starting policy; on first use, say so and train it (with a progress
    bar) in a child process, so that this process (the driver) never starts JAX before Ray
    starts its processes (a fork after JAX started warns of a deadlock) and a signal ends the
    training without a C++ stack dump. The child builds it without the caller's XLA_FLAGS (the
    weights would depend on them), so a sweep's Ray task and a driver cache the same policy."""
    import sys

    out = task.starting_policy_dir(cache_dir())
    if (out / "task.json").is_file():
        return out
    print(f"training the starting policy of task {task.name!r} ({task.sft['steps']} SFT steps, "
          f"once: it is cached in {out})", file=sys.stderr, flush=True)
    spec = getattr(task, "spec", None)
    if not isinstance(spec, str):  # (a Task object a child cannot rebuild by name)
        return task.starting_policy(cache_dir(), progress=True)
    import multiprocessing

    child = multiprocessing.get_context("spawn").Process(
        target=_starting_policy_child, args=(spec, str(cache_dir())), name="duel-sft")
    child.start()
    try:
        child.join()
    finally:
        if child.is_alive():  # this process was interrupted: stop the training too
            child.terminate()
            child.join()
    if child.exitcode != 0 or not (out / "task.json").is_file():
        raise RuntimeError(f"training the starting policy of task {task.name!r} failed "
                           f"(exit status {child.exitcode}; its error is printed above)")
    return out


def _starting_policy_child(spec: str, root: str) -> None:
    import signal
    import sys

    # The cached policy is one per task spec, so it must not depend on who built it first: XLA's
    # options change the SFT's float rounding (`reverse`: --xla_backend_optimization_level=0 gives
    # other weights, docs/results/tuning17/PLAN.md). Dropped before JAX reads them (at its first
    # backend), so the policy is the one XLA's defaults give.
    os.environ.pop("XLA_FLAGS", None)
    import jax  # noqa: F401  (first: a handler set after it replaces the C++ one of its runtime)

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    from duel.tasks import get_task

    try:
        get_task(spec).starting_policy(root, progress=True)
    except KeyboardInterrupt:  # the parent says what happened
        sys.exit(130)


def encoder_dir(cfg) -> str | None:
    """The `erm.encoder` directory (user home expanded), or None: phi from the starting policy."""
    return str(Path(cfg.erm.encoder).expanduser()) if cfg.erm.encoder else None


def feature_dim(cfg, model_config) -> int:
    """Width of phi(x, y), the ERM's input: the `erm.encoder`'s hidden size, else the policy's
    (1 with `erm.features: gold`: the gold reward; + sampling.max_new_tokens with `hidden_probs`;
    + sampling.max_new_tokens + the policy's hidden size with `hidden_probs_words`)."""
    if cfg.erm.features == "gold":
        return 1
    extra = int(cfg.sampling.max_new_tokens) if cfg.erm.features in ("hidden_probs", "hidden_probs_words") else 0
    if cfg.erm.features == "hidden_probs_words":  # the bag of words: the starting policy's embedding width
        extra += int(model_config.hidden_size)
    if not cfg.erm.encoder:
        return int(model_config.hidden_size) + extra
    from duel.models.hf import read_config

    return int(read_config(encoder_dir(cfg)).hidden_size) + extra


def check_encoder(cfg, model_dir) -> None:
    """ConfigError unless `erm.encoder` is a model directory the models package loads, with the
    policy's tokenizer (tokenizer.json of the same content: the encoder reads the policy's token
    ids as they are). Reads config.json and the safetensors headers (every tensor the model
    needs, by name and shape), not the weights."""
    from duel.config import ConfigError
    from duel.models import weights
    from duel.models.hf import _Safetensors, read_config

    if not cfg.erm.encoder:
        return
    path = Path(encoder_dir(cfg))
    key = f"key 'erm.encoder' ({cfg.erm.encoder!r})"
    if not (path / "config.json").is_file():
        raise ConfigError(f"{key}: expected a Hugging Face model directory (config.json and "
                          f"*.safetensors), got {str(path)!r}" + ("" if path.exists() else " (it does not exist)"))
    try:
        config = read_config(path)
        prefix = weights.BASE_PREFIX[config.family]
        with _Safetensors(path) as st:
            for hf, ours, kind, shape in weights.rows(config):
                layered = ours.startswith("layers.")
                want = weights.hf_shape(kind, shape[1:] if layered else shape)
                for name in ([hf.format(i=i) for i in range(config.num_layers)] if layered else [hf]):
                    k = name if name in st.files or not name.startswith(prefix) else name[len(prefix):]
                    if k not in st.files:
                        raise ValueError(f"missing tensor {name!r} (needed for our {ours!r})")
                    got = tuple(st._open(st.files[k]).get_slice(k).get_shape())
                    if got != tuple(want):
                        raise ValueError(f"tensor {k!r} has shape {got}, expected {tuple(want)} (from config.json)")
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"{key}: {str(path)!r} does not load as a model: {e}") from None
    mine, theirs = Path(model_dir) / "tokenizer.json", path / "tokenizer.json"
    if not theirs.is_file():
        raise ConfigError(f"{key}: {str(path)!r} has no tokenizer.json; the encoder must use the policy's "
                          f"tokenizer ({mine})")
    try:
        a, b = json.loads(mine.read_text()), json.loads(theirs.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{key}: cannot compare tokenizers {mine} and {theirs}: {e}") from None
    if a != b:
        parts = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        va = len((a.get("model") or {}).get("vocab") or ())
        vb = len((b.get("model") or {}).get("vocab") or ())
        raise ConfigError(f"{key}: {theirs} differs from the policy's {mine} (in {', '.join(parts)}; "
                          f"vocab {vb} vs {va} entries); the encoder reads the policy's token ids, so "
                          "it needs the same tokenizer")


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


def resolve_task(cfg):
    """The run's task, or None for a run of data alone (duel.data_source.run_task); InputError
    (ConfigError for an unknown task) when the config has neither, or when the oracle is the
    task's gold reward and there is no task."""
    from duel.config import ConfigError
    from duel.data import DataError
    from duel.data_source import run_task

    try:
        task = run_task(cfg)
    except DataError as e:
        raise InputError(str(e)) from None
    except (KeyError, ValueError, ImportError, AttributeError) as e:
        raise ConfigError(f"key 'task': {e}") from None
    if task is None and grades_with_task(cfg, task):
        raise InputError(f"key 'oracle.kind': {cfg.oracle.kind!r} grades with the task's gold reward, "
                         "and the config has no 'task'; with 'data:' alone the oracle is a reward_model, "
                         "judge, remote or human (or set 'task' to the task that grades)")
    return task


def check_tracking(cfg) -> None:
    """InputError when `logging.wandb` asks for W&B and the wandb package is missing."""
    from duel.tracking import TrackingError, WandbSpec, check_installed

    if WandbSpec.from_config(cfg) is not None:
        try:
            check_installed()
        except TrackingError as e:
            raise InputError(str(e)) from None


def task_prompts(cfg, task) -> list[dict]:
    """The run's training prompts, checked row by row (a data file with bad rows fails here):
    the rows of `data.train` when it is set, else the task's."""
    from duel.data import DataError
    from duel.data_source import train_rows

    key = f"key 'data.train' ({cfg.data.train!r})" if cfg.data.train else f"key 'task' ({cfg.task!r})"
    try:
        rows = train_rows(cfg, task)
    except DataError as e:  # names the file, the row and the column (and the data key)
        raise InputError(str(e) if cfg.data.train else f"{key}: its training prompts: {e}") from e
    except OSError as e:  # the task reads a prompts file
        raise InputError(f"{key}: its training prompts: {e}") from e
    if not rows:
        raise InputError(f"{key}: the training prompt set is empty")
    seen = set()
    for i, r in enumerate(rows):
        if not isinstance(r, dict) or "id" not in r or not isinstance(r.get("prompt"), str) \
                or not r["prompt"].strip():
            raise InputError(f"{key}: training prompt row {i} must be "
                             f"{{'id', 'prompt': non-empty str}}, got {str(r)[:200]}")
        if str(r["id"]) in seen:
            raise InputError(f"{key}: training prompt row {i}: id "
                             f"{str(r['id'])!r} repeats an earlier row")
        seen.add(str(r["id"]))
    if cfg.data.train and task is not None and grades_with_task(cfg, task):
        from duel.data_source import read_table

        where = read_table(cfg.data.train, cfg.data.train_split, "data.train")[1]
        for i, r in enumerate(rows):
            reason = task.check_prompt(r["prompt"])
            if reason:
                raise InputError(f"key 'data.train': {cfg.data.train}: {where(i)}: task {task.name!r} "
                                 f"cannot grade this prompt (oracle.kind {cfg.oracle.kind!r} is "
                                 f"its gold reward): {reason}")
    return rows


def eval_prompts(cfg, task) -> list[dict]:
    """The run's eval rows with references (duel.data_source.eval_rows), checked: InputError."""
    from duel.data import DataError
    from duel.data_source import eval_rows

    from duel.data_source import DataSpec

    try:
        rows = eval_rows(cfg, task)
    except (DataError, OSError) as e:
        if DataSpec.from_config(cfg).eval_source() is not None:
            raise InputError(str(e)) from e
        raise InputError(f"key 'task' ({cfg.task!r}): its eval prompts: {e}") from e
    if not rows:
        raise InputError(f"key 'task' ({cfg.task!r}): the eval prompt set is empty")
    return rows


def grades_with_task(cfg, task) -> bool:
    """Whether the oracle is the task's gold reward (kind "task", or "rule" with no other reward)."""
    return cfg.oracle.kind == "task" or (
        cfg.oracle.kind == "rule" and cfg.oracle.options.get("reward") is None)


PROMPTS_RECORD = "prompts.json"


def prompts_digest(rows: list[dict], with_reference: bool = False) -> str:
    """sha256 of the (id, prompt[, messages][, reference]) rows in order: what the run reads, not
    the file's bytes (a file re-saved with other formatting or key order keeps its digest)."""
    def row(r):
        out = [str(r["id"]), r["prompt"]]
        if r.get("messages") is not None:
            out.append(r["messages"])
        if with_reference:
            out.append(r.get("reference"))
        return out

    data = json.dumps([row(r) for r in rows], ensure_ascii=False)
    return hashlib.sha256(data.encode()).hexdigest()


def data_record(cfg, rows: list[dict], evals: list[dict] | None) -> dict | None:
    """What RUN_DIR/prompts.json records of the run's data (None when it is all the task's):
    {"file", "rows", "sha256"} of the training rows, and "eval_file", "eval_rows", "eval_sha256"
    of the eval rows (with their references) when the data gives them."""
    from duel.data_source import DataSpec

    record = {}
    if cfg.data.train:
        record = {"file": str(cfg.data.train), "rows": len(rows), "sha256": prompts_digest(rows)}
    src = DataSpec.from_config(cfg).eval_source()
    if src is not None and evals is not None:
        record.update(eval_file=str(src[1]), eval_rows=len(evals),
                      eval_sha256=prompts_digest(evals, with_reference=True))
    return record or None


def check_prompts_record(cfg, run_dir: Path, rows: list[dict], evals: list[dict] | None = None) -> dict | None:
    """RunDirError if RUN_DIR/prompts.json records other rows than the data gives now;
    -> the record to write (None when the prompts come from the task, or it is already there)."""
    record = data_record(cfg, rows, evals)
    if record is None:
        return None
    path = run_dir / PROMPTS_RECORD
    if not path.is_file():
        return record
    try:
        old = json.loads(path.read_text())
        if not isinstance(old, dict):
            raise TypeError(f"got {type(old).__name__}")
        for k in ("sha256", "eval_sha256"):
            if k in old:
                str(old[k]), int(old[k.replace("sha256", "rows")])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RunDirError(f"{path}: expected a JSON object with 'sha256' and 'rows' (the data "
                          f"this run started with), cannot read it: {e}") from e
    for pre, key in (("", "data.train"), ("eval_", "data.eval" if cfg.data.eval else "data.train")):
        if pre + "sha256" not in old or pre + "sha256" not in record:
            continue
        old_sha, old_rows = str(old[pre + "sha256"]), int(old[pre + "rows"])
        if old_sha != record[pre + "sha256"]:
            raise RunDirError(
                f"key {key!r} ({record[pre + 'file']!r}): the {'eval ' if pre else ''}data changed since "
                f"this run started: {path} records {old_rows} rows with sha256 {old_sha[:16]}..., "
                f"the data now gives {record[pre + 'rows']} rows with sha256 "
                f"{record[pre + 'sha256'][:16]}...; a resumed run must read the same rows in the same "
                "order: restore the data or start a new run")
    return None


def encode_run_prompts(cfg, tok, rows: list[dict]):
    """-> (PromptBatch of every kept training prompt, EncodeStats, kept rows): the chat template,
    `data.max_prompt_len` and `data.truncation` applied as for every step of the run."""
    from duel.data import DataError, encode_prompts

    try:
        batch, stats = encode_prompts(tok, rows, max_prompt_len=cfg.data.max_prompt_len,
                                      truncation=cfg.data.truncation)
    except DataError as e:  # a chat prompt and a policy tokenizer without a chat template
        first = next((r["id"] for r in rows if r.get("messages") is not None), "?")
        raise InputError(f"key 'data.train' ({cfg.data.train!r}): row id {first!r}: {e}") from e
    if stats.dropped == len(rows):
        raise InputError(f"key 'data.max_prompt_len' ({cfg.data.max_prompt_len}): every training prompt "
                         f"is longer, and data.truncation is 'drop': no prompt is left")
    kept = set(batch.prompt_ids)
    return batch, stats, [r for r in rows if str(r["id"]) in kept]


def prompt_width(cfg, model_dir) -> int:
    """The token width every PromptBatch of the run has: `prepare_inputs` encodes all training
    prompts at once, left-padded to the longest (the learner's label replay stores rows at it)."""
    from duel.tasks.tokenizer import load_tokenizer

    rows = task_prompts(cfg, resolve_task(cfg))
    batch, _, _ = encode_run_prompts(cfg, load_tokenizer(model_dir), rows)
    return int(batch.input_ids.shape[1])


def _started_only(run_dir: Path) -> bool:
    """A run stopped before its first checkpoint (during start-up, or killed early): its config
    is written. Resuming it starts from step 0 and reuses the labels its ledger holds."""
    return (run_dir / "config.yaml").is_file()


def prepare_inputs(cfg, run_dir: Path, *, resume: bool | None = None,
                   hold: contextlib.ExitStack | None = None) -> RunInputs:
    """Check everything about a run before Ray starts, then write RUN_DIR's config (and prompts
    record). `hold`: take RUN_DIR/.lock (run_dir_lock) before the first write and keep it in this
    ExitStack, for the caller to hold while the run lasts."""
    from duel.checkpoint import all_steps
    from duel.config import save_config, to_dict, validate
    from duel.tasks.tokenizer import load_tokenizer

    validate(cfg)  # a Config built in code is checked like a file (before Ray starts)
    run_dir = Path(run_dir)
    has_ckpt = bool(all_steps(run_dir))
    cfg_file = run_dir / "config.yaml"
    if resume is True and not has_ckpt and not _started_only(run_dir):
        raise RunDirError(f"{run_dir}: no checkpoint to resume from")
    if resume is False and (has_ckpt or cfg_file.exists()):
        raise RunDirError(f"{run_dir} already holds a run; resume it or choose another run directory")
    if cfg_file.exists():
        from duel.config import load_config

        if to_dict(load_config(cfg_file)) != to_dict(cfg):
            raise RunDirError(f"{cfg_file}: the run directory was started with another config; "
                              "resume it with its own config or choose another run directory")
    check_tracking(cfg)
    task = resolve_task(cfg)
    rows = task_prompts(cfg, task)
    evals = eval_prompts(cfg, task)
    record = check_prompts_record(cfg, run_dir, rows, evals)
    model_dir = model_dir_for(cfg, task)
    try:
        tok = load_tokenizer(model_dir)
    except FileNotFoundError as e:
        raise InputError(f"key 'policy.path': {e}") from e
    check_encoder(cfg, model_dir)
    batch, stats, rows = encode_run_prompts(cfg, tok, rows)
    if stats.truncated or stats.dropped:
        import sys

        print(f"training prompts: {stats.rows} rows, {stats.truncated} cut to their last "
              f"{cfg.data.max_prompt_len} tokens, {stats.dropped} dropped (data.max_prompt_len, "
              f"data.truncation: {cfg.data.truncation})", file=sys.stderr, flush=True)
    ids, mask = batch.input_ids, batch.attention_mask
    pad = int(tok.pad_token_id if tok.pad_token_id is not None else 0)
    if hold is not None:
        hold.enter_context(run_dir_lock(run_dir))  # makes run_dir; refuses a busy one
    run_dir.mkdir(parents=True, exist_ok=True)
    if record is not None:  # before config.yaml: a run directory with a config has its record
        tmp = run_dir / f".{PROMPTS_RECORD}.tmp"
        tmp.write_text(json.dumps(record, indent=1) + "\n")
        os.replace(tmp, run_dir / PROMPTS_RECORD)
    if not cfg_file.exists():
        save_config(cfg, cfg_file)
    return RunInputs(cfg=cfg, run_dir=run_dir, model_dir=model_dir, prompt_rows=rows,
                     input_ids=ids, attention_mask=mask, pad_id=pad, config_dict=to_dict(cfg),
                     resume=has_ckpt)

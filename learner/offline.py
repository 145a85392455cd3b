"""`duel eval RUN_DIR` and `duel export RUN_DIR OUT_DIR`: a run's latest checkpoint, no Ray.

The learner is rebuilt in this process from RUN_DIR/config.yaml, its newest valid checkpoint
restored (a corrupt newest one is refused and the previous one used, with the message shown),
and the ledger opened read-only.
"""

from __future__ import annotations

import shutil
from pathlib import Path

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json",
                   "chat_template.jinja", "generation_config.json")


def restored_learner(run_dir: Path):
    """-> (learner, meta) from the run's newest valid checkpoint."""
    from duel.config import load_config
    from learner.learner import Learner
    from learner.setup import model_dir_for

    run_dir = Path(run_dir)
    cfg_file = run_dir / "config.yaml"
    if not cfg_file.is_file():
        raise FileNotFoundError(f"{cfg_file}: not found; expected a run directory written by `duel run`")
    cfg = load_config(cfg_file)
    learner = Learner(cfg, model_dir_for(cfg), str(run_dir), readonly=True)
    meta = learner.restore()
    if meta is None:
        raise FileNotFoundError(f"{run_dir / 'checkpoints'}: no checkpoint yet")
    for msg in meta.get("refused", []):
        print(msg)
    return learner, meta


def evaluate_run(run_dir: Path) -> dict:
    learner, meta = restored_learner(run_dir)
    step = int(meta["checkpoint_step"])
    return {"step": step, **learner.evaluate(step)}


class ExportError(ValueError):
    """OUT_DIR cannot take the export (not empty, a file) without --force."""


def check_export_target(out_dir: Path, force: bool = False) -> None:
    """Refuse an OUT_DIR that is a file or a non-empty directory unless `force` (nothing is
    read or written before this check)."""
    out_dir = Path(out_dir)
    if force or not (out_dir.exists() or out_dir.is_symlink()):
        return
    if not out_dir.is_dir():
        raise ExportError(f"{out_dir}: exists and is not a directory; choose a new directory "
                          "or pass --force to replace it")
    entries = sorted(p.name for p in out_dir.iterdir())
    if entries:
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise ExportError(f"{out_dir}: not empty ({len(entries)} entries: {shown}); choose a new "
                          "directory or pass --force to replace its contents")


def export_run(run_dir: Path, out_dir: Path, force: bool = False, peft: bool = False,
               average: bool = False) -> Path:
    """Write the policy (float32) as a Hugging Face directory with the tokenizer files; with
    `average` the Polyak average of the policy that the run evaluates (`eval.ema`). A LoRA
    run's adapters are merged into the base weights (W + alpha/r A B: a plain model), or with
    `peft` written as a PEFT adapter directory that loads on top of the run's base model.

    OUT_DIR must be new or empty unless `force`. The export is written into a temporary
    directory next to OUT_DIR and renamed into place when complete, so OUT_DIR never holds a
    half-written export nor files left from its previous contents (with `force` those go)."""
    import os
    import tempfile

    from duel.models import save_pretrained

    out_dir = Path(out_dir)
    check_export_target(out_dir, force)
    learner, _ = restored_learner(run_dir)
    if peft and learner.lora is None:
        raise ExportError(f"{run_dir}/config.yaml: key 'policy.lora.rank' is 0 (no LoRA adapters); "
                          "--peft exports the adapters of a LoRA run")
    model = learner.policy_model(average=average)  # a run without eval.ema refuses `average`
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.export-", dir=out_dir.parent))
    old = None
    try:
        from duel.models.lora import merge, save_peft

        if peft:
            save_peft(model, tmp, base_model_path=str(Path(learner.model_dir).resolve()))
        else:
            save_pretrained(merge(model), learner.model_config, tmp)
        for name in TOKENIZER_FILES:
            src = Path(learner.model_dir) / name
            if src.is_file():
                shutil.copyfile(src, tmp / name)
        umask = os.umask(0)
        os.umask(umask)
        for p in tmp.iterdir():  # as files written with open(): 0644 under the usual umask
            p.chmod(0o666 & ~umask)
        tmp.chmod(0o777 & ~umask)  # mkdtemp makes it 0700
        check_export_target(out_dir, force)  # again: something may have appeared meanwhile
        if out_dir.is_dir() and not out_dir.is_symlink() and not any(out_dir.iterdir()):
            out_dir.rmdir()
        elif out_dir.exists() or out_dir.is_symlink():  # force: move the old contents aside
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
            os.replace(out_dir, old / "old")
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and (old / "old").exists() and not out_dir.exists():
            os.replace(old / "old", out_dir)  # put the previous contents back
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return out_dir

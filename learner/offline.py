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


def export_run(run_dir: Path, out_dir: Path) -> Path:
    """Write the policy (float32) as a Hugging Face directory with the tokenizer files."""
    from duel.models import save_pretrained

    learner, _ = restored_learner(run_dir)
    out_dir = Path(out_dir)
    save_pretrained(learner.policy_model(), learner.model_config, out_dir)
    for name in TOKENIZER_FILES:
        src = Path(learner.model_dir) / name
        if src.is_file():
            shutil.copy2(src, out_dir / name)
    return out_dir

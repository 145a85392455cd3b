"""Weights & Biases: a mirror of the run's metric rows (`logging.wandb`), optional.

    mirror = WandbMirror.open(run_dir, spec, config=to_dict(cfg))  # a resume: the same W&B run
    mirror.log(row)              # every row MetricsWriter writes to metrics.jsonl
    mirror.log_images({...})     # the report plot at the end
    mirror.close()

Rows: each numeric value of a metrics.jsonl row goes to W&B as "KIND/KEY" (the TensorBoard
names), with "step" as the x-axis of every chart (`define_metric`), so train and eval rows of
one step may both be logged and W&B's own step counter never refuses a row. The resolved run
config is the W&B run config.

Resume: the W&B run id is written to RUN_DIR/wandb.json before the first row, and a resumed run
opens the same W&B run (`resume="allow"`). Steps a killed run had logged after its last
checkpoint are logged again when the resume redoes them (metrics.jsonl drops its copies; W&B
keeps both: a chart shows two points at those steps).

`mode: offline` writes RUN_DIR/wandb/offline-run-*/ and needs no network (`wandb sync` uploads
it later). The W&B files live in the run directory; API keys come from the environment
(WANDB_API_KEY or `wandb login`), never from the config.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import secrets
from pathlib import Path
from typing import Any

RECORD = "wandb.json"


class TrackingError(RuntimeError):
    """W&B was asked for and cannot be used (the package is missing)."""


@dataclasses.dataclass(frozen=True)
class WandbSpec:
    project: str
    entity: str | None = None
    name: str | None = None
    mode: str = "online"

    @classmethod
    def from_config(cls, cfg) -> "WandbSpec | None":
        """The `logging.wandb` section, or None when it names no project (W&B off)."""
        w = cfg.logging.wandb
        if not w.project:
            return None
        return cls(project=w.project, entity=w.entity, name=w.name, mode=w.mode)


def check_installed() -> None:
    """TrackingError unless the wandb package imports (checked before anything starts)."""
    import importlib.util

    if importlib.util.find_spec("wandb") is None:
        raise TrackingError("key 'logging.wandb.project' asks for Weights & Biases, and the wandb "
                            "package is not installed: pip install -e '.[wandb]' (or pip install wandb), "
                            "or remove logging.wandb")


class WandbMirror:
    def __init__(self, run):
        self.run = run

    @classmethod
    def open(cls, run_dir, spec: WandbSpec, *, config: dict) -> "WandbMirror":
        check_installed()
        import wandb

        run_dir = Path(run_dir)
        record = run_dir / RECORD
        run_id = None
        if record.is_file():
            run_id = json.loads(record.read_text()).get("id")
        if not run_id:
            run_id = secrets.token_hex(4)  # 8 characters, as W&B makes them
            tmp = run_dir / f".{RECORD}.tmp"
            tmp.write_text(json.dumps({"id": run_id, "project": spec.project, "entity": spec.entity}) + "\n")
            os.replace(tmp, record)
        run = wandb.init(project=spec.project, entity=spec.entity, name=spec.name or run_dir.name,
                         mode=spec.mode, id=run_id, resume="allow", dir=str(run_dir), config=config,
                         settings=wandb.Settings(console="off", x_disable_stats=True))
        run.define_metric("step")
        run.define_metric("*", step_metric="step")
        return cls(run)

    @property
    def id(self) -> str:
        return self.run.id

    def log(self, row: dict[str, Any]) -> None:
        """One metrics.jsonl row: its finite numbers as KIND/KEY at its step."""
        kind = row["kind"]
        values = {f"{kind}/{k}": v for k, v in row.items()
                  if k not in ("kind", "step") and not isinstance(v, bool)
                  and isinstance(v, (int, float)) and math.isfinite(v)}
        self.run.log({"step": row["step"], **values})

    def log_images(self, images: dict[str, Path]) -> None:
        import wandb

        if images:
            self.run.log({k: wandb.Image(str(p)) for k, p in images.items()})

    def close(self) -> None:
        if self.run is not None:
            self.run.finish()
            self.run = None

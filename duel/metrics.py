"""Run metrics: JSON lines + TensorBoard, a reader, and the loop's live progress display.

    with MetricsWriter(run_dir, tensorboard=cfg.logging.tensorboard) as mw:
        mw.log("train", step, queries=q, synthetic=s, loss=loss, time_generate=tg, ...)
        mw.log("eval", step, queries=q, win_rate=w, win_rate_lo=lo, win_rate_hi=hi, n=n)
    rows = read_metrics(run_dir, kind="eval")

RUN_DIR/metrics.jsonl holds one JSON object per line with at least "kind" and "step" (the
schema is in docs/architecture.md, "Run directory"); each line is flushed when written. NumPy
and JAX scalars become Python numbers, small arrays lists. Numeric values also go to
TensorBoard under RUN_DIR/tb as `KIND/KEY`, and to Weights & Biases when a `mirror`
(duel.tracking.WandbMirror) is given. A resumed run opens the writer with
`resume_step=S`, which drops lines with step > S (the run is about to redo those steps), so the
file of a resumed run equals that of a run never stopped.

`Progress` is the live display of the loop: queries used / budget, synthetic labels, last win
rate, and the step time split (generate, select, oracle, learn, publish). It uses rich when
stdout is a terminal and prints one plain line per update otherwise (logs, CI, Ray drivers).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

PHASES = ("generate", "select", "oracle", "learn", "publish")


def _plain(x: Any) -> Any:
    """JSON-ready copy: NumPy/JAX scalars -> numbers, arrays -> lists, tuples -> lists."""
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, (str, bool, int, float)) or x is None:
        return x
    if isinstance(x, np.generic):
        return x.item()
    if hasattr(x, "__array__"):  # np.ndarray, jax.Array
        a = np.asarray(x)
        return a.item() if a.ndim == 0 else a.tolist()
    raise TypeError(f"metrics: cannot write a {type(x).__name__} as JSON")


def metrics_path(run_dir: str | Path) -> Path:
    return Path(run_dir) / "metrics.jsonl"


def read_metrics(run_dir: str | Path, kind: str | None = None) -> list[dict]:
    """The lines of RUN_DIR/metrics.jsonl (optionally of one kind); a torn last line is skipped."""
    path = metrics_path(run_dir)
    if not path.is_file():
        return []
    lines = path.read_text().splitlines()
    rows = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                break  # a crash mid-write; the run redoes that step on resume
            raise ValueError(f"{path}: line {i + 1} is not valid JSON") from None
        if kind is None or row.get("kind") == kind:
            rows.append(row)
    return rows


def truncate_metrics(run_dir: str | Path, step: int) -> int:
    """Keep only lines with step <= `step` (atomic rewrite). Returns the number dropped."""
    path = metrics_path(run_dir)
    if not path.is_file():
        return 0
    rows = read_metrics(run_dir)
    keep = [r for r in rows if r.get("step", 0) <= step]
    tmp = path.with_suffix(".jsonl.tmp")
    with open(tmp, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in keep)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    return len(rows) - len(keep)


class MetricsWriter:
    """Appends metric records to RUN_DIR/metrics.jsonl and (optionally) TensorBoard."""

    def __init__(self, run_dir: str | Path, *, tensorboard: bool = True,
                 resume_step: int | None = None, mirror=None):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = metrics_path(run_dir)
        self.dropped = truncate_metrics(run_dir, resume_step) if resume_step is not None else 0
        self._file = open(self.path, "a")  # noqa: SIM115 (held open; closed in close())
        self.mirror = mirror  # duel.tracking.WandbMirror (or anything with log(row), close())
        self._tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            # purge_step: TensorBoard hides the stopped run's events for the redone steps
            purge = None if resume_step is None else resume_step + 1
            self._tb = SummaryWriter(logdir=str(self.run_dir / "tb"), purge_step=purge)

    def log(self, kind: str, step: int, **values: Any) -> dict:
        """Write one record {"kind", "step", **values}; returns what was written."""
        return self.write({"kind": kind, "step": step, **values})

    def write(self, record: dict) -> dict:
        if "kind" not in record or "step" not in record:
            raise ValueError(f"{self.path}: a metrics record needs 'kind' and 'step', "
                             f"got keys {sorted(record)}")
        row = _plain(record)
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        if self._tb is not None:
            for key, value in row.items():
                if key in ("kind", "step") or isinstance(value, bool):
                    continue
                if isinstance(value, (int, float)) and math.isfinite(value):
                    self._tb.add_scalar(f"{row['kind']}/{key}", value, global_step=row["step"])
            self._tb.flush()
        if self.mirror is not None:
            self.mirror.log(row)
        return row

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self.mirror is not None:
            self.mirror.close()
            self.mirror = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---------------------------------------------------------------------------------------------
# live progress


def _fmt_seconds(s: float) -> str:
    return f"{s * 1000:.0f}ms" if s < 1 else f"{s:.2f}s"


class Progress:
    """Live progress of a run; `update` once per step, `message` for events (eval, checkpoint).

    Uses rich.live when the console is a terminal (and `enabled`), plain lines otherwise.
    """

    def __init__(self, steps: int, budget: int | None = None, *, enabled: bool = True,
                 console=None, start_step: int = 0, plain_every: int = 1):
        from rich.console import Console

        self.steps, self.budget, self.enabled = steps, budget, enabled
        self.plain_every = max(int(plain_every), 1)  # plain mode: a line every N steps
        self.console = console or Console(file=sys.stdout)
        self.live = None
        self.state: dict[str, Any] = {"step": start_step, "queries": 0, "synthetic": 0,
                                      "win_rate": None, "times": {}}
        self._t0 = time.monotonic()
        self._step0 = start_step

    @property
    def rich(self) -> bool:
        return self.enabled and self.console.is_terminal

    def __enter__(self):
        if self.rich:
            from rich.live import Live

            self.live = Live(self._render(), console=self.console, refresh_per_second=4,
                             transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.update(self._render())
            self.live.__exit__(*exc)
            self.live = None

    def update(self, step: int, queries: int, synthetic: int = 0, *,
               win_rate: float | None = None, times: dict[str, float] | None = None,
               win_rate_step: int | None = None) -> None:
        """times: seconds per phase for this step, keys among PHASES (others shown too).
        win_rate: the last eval's, measured at win_rate_step (default: this step); the display
        names that step, so an old value never reads as a live one."""
        s = self.state
        s.update(step=int(step), queries=int(queries), synthetic=int(synthetic),
                 times=dict(times or {}))
        if win_rate is not None:
            s["win_rate"] = float(win_rate)
            s["win_rate_step"] = int(step if win_rate_step is None else win_rate_step)
        if self.live is not None:
            self.live.update(self._render())
        elif self.enabled and (step % self.plain_every == 0 or step >= self.steps):
            self.console.print(self.line(), markup=False, highlight=False, soft_wrap=True)

    def message(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def _split(self) -> list[tuple[str, float, float]]:
        times = self.state["times"]
        total = sum(times.values()) or 1.0
        names = [p for p in PHASES if p in times] + [k for k in times if k not in PHASES]
        return [(k, times[k], 100.0 * times[k] / total) for k in names]

    def line(self) -> str:
        """The plain one-line summary (used when stdout is not a TTY)."""
        s = self.state
        budget = "" if self.budget is None else f"/{self.budget}"
        parts = [f"step {s['step']}/{self.steps}", f"queries {s['queries']}{budget}",
                 f"synthetic {s['synthetic']}"]
        if s["win_rate"] is not None:
            parts.append(f"last eval (step {s['win_rate_step']}) win rate {s['win_rate']:.3f}")
        if s["times"]:
            parts.append("time " + " ".join(f"{k} {_fmt_seconds(t)}" for k, t, _ in self._split()))
        return "  ".join(parts)

    def _render(self):
        from rich.progress_bar import ProgressBar
        from rich.table import Table

        s = self.state
        table = Table.grid(padding=(0, 2))
        table.add_column(justify="right", style="bold")
        table.add_column()
        done = s["step"] - self._step0
        rate = done / max(time.monotonic() - self._t0, 1e-9)
        speed = f"  ({rate:.2f} steps/s)" if done else ""
        table.add_row("step", f"{s['step']}/{self.steps}{speed}")
        table.add_row("", ProgressBar(total=self.steps, completed=s["step"], width=40))
        if self.budget is None:
            table.add_row("queries", f"{s['queries']} (no budget)")
        else:
            table.add_row("queries", f"{s['queries']}/{self.budget}")
            bar = ProgressBar(total=max(self.budget, 1), completed=s["queries"], width=40)
            table.add_row("", bar)
        table.add_row("synthetic labels", str(s["synthetic"]))
        table.add_row("last eval win rate", "-" if s["win_rate"] is None
                      else f"{s['win_rate']:.3f} (at step {s['win_rate_step']})")
        if s["times"]:
            table.add_row("step time", "  ".join(f"{k} {_fmt_seconds(t)} ({p:.0f}%)"
                                                 for k, t, p in self._split()))
        return table

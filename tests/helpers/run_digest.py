"""Digests of a finished run directory, for "no behaviour change" comparisons (issue 16).

    python tests/helpers/run_digest.py RUN_DIR [--out FILE] [--compare FILE]

Three digests, each a SHA-256 over a canonical JSON form:
- ledger: every entry of RUN_DIR/ledger/*.jsonl in order, without `metadata.latency_s`;
- metrics: every row of RUN_DIR/metrics.jsonl without wall times (`time_*`) and latencies
  (`*latency*`);
- checkpoints: per step, every array of the Orbax state read back independently of
  duel.checkpoint (dtype, shape, bytes), plus the meta's counters and evals.
--compare FILE exits 1 when any digest differs from those stored in FILE.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def _timing(key: str) -> bool:
    return key.startswith("time_") or "latency" in key


def ledger_digest(run_dir: Path) -> str:
    rows = []
    for seg in sorted((run_dir / "ledger").glob("segment-*.jsonl")):
        for line in seg.read_text().splitlines():
            e = json.loads(line)
            e["metadata"] = {k: v for k, v in e.get("metadata", {}).items() if not _timing(k)}
            rows.append(e)
    return _sha(rows)


def metrics_digest(run_dir: Path) -> str:
    rows = [{k: v for k, v in json.loads(line).items() if not _timing(k)}
            for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return _sha(rows)


def checkpoint_digests(run_dir: Path) -> dict[str, str]:
    import jax
    import orbax.checkpoint as ocp

    out = {}
    for step_dir in sorted((run_dir / "checkpoints").iterdir(), key=lambda p: int(p.name)):
        tree = ocp.PyTreeCheckpointer().restore((step_dir / "state").absolute())
        h = hashlib.sha256()
        for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
            a = np.asarray(leaf)
            h.update(f"{jax.tree_util.keystr(path)}|{a.dtype.str}|{a.shape}|".encode())
            h.update(np.ascontiguousarray(a).tobytes())
        meta = json.loads((step_dir / "meta" / "metadata").read_text())["meta"]
        out[step_dir.name] = {"arrays": h.hexdigest(),
                              "counters_evals": _sha({"counters": meta["counters"],
                                                      "evals": meta.get("evals")})}
    return out


def digests(run_dir: str | Path) -> dict:
    run_dir = Path(run_dir)
    return {"ledger": ledger_digest(run_dir), "metrics": metrics_digest(run_dir),
            "checkpoints": checkpoint_digests(run_dir)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    ap.add_argument("--out")
    ap.add_argument("--compare")
    a = ap.parse_args(argv)
    d = digests(a.run_dir)
    text = json.dumps(d, indent=2, sort_keys=True)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    if a.compare:
        want = json.loads(Path(a.compare).read_text())
        if want != d:
            print(f"DIFFERENT from {a.compare}", file=sys.stderr)
            return 1
        print(f"identical to {a.compare}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Helpers of bench/gpu.sh: a preflight of the device's Python stack, and the issue's targets read
back from the JSON a run wrote.

    python3 bench/gpu_report.py preflight [--require-gpu]   # versions, devices, one tiny generate + train step
    python3 bench/gpu_report.py summary DIR                 # targets vs measured, from DIR/*.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/gpu_report.py` from anywhere

GB = 1e9
# file names bench/gpu.sh gives each stage's JSON (in $OUT)
FILES = {"memory": "memory.json", "e2e-pythia-1b": "e2e-pythia-1b.json", "e2e-qwen2.5-0.5b": "e2e-qwen2.5-0.5b.json",
         "train_step": "train_step.json", "sampler": "sampler.json", "profile": "gpu_profile.json"}


def preflight(require_gpu: bool) -> int:
    """Print the stack, then run the smallest generate + DPO step; non-zero exit if anything fails."""
    from importlib.metadata import PackageNotFoundError, version

    for pkg in ("jax", "jaxlib", "flax", "optax", "numpy", "torch", "transformers", "rich", "pyyaml", "pydantic"):
        try:
            print(f"  {pkg} {version(pkg)}")
        except PackageNotFoundError:
            print(f"  {pkg} MISSING")
    import jax
    import jax.numpy as jnp
    import numpy as np

    print(f"  jax devices: {jax.devices()}  backend: {jax.default_backend()}")
    if require_gpu and jax.default_backend() != "gpu":
        print("preflight: JAX sees no GPU (is the CUDA plugin installed?); not running full shapes on a CPU")
        return 2
    try:
        import torch

        print(f"  torch cuda: {torch.cuda.is_available()}")
    except ImportError:
        print("  torch missing: the peers (transformers) cannot run")
    try:  # the run configs (bench/memory.py reads the preset); absent from the device image on 2026-12-04
        import duel.config  # noqa: F401
    except ImportError as e:
        print(f"preflight: {e}: carry its wheels in .whl/ (docs/scale.md, 'Measuring on a GPU')")
        return 3
    from bench.train_step import FULL, check_shape, make_batch
    from duel.models import build_model
    from duel.sampling import SamplingParams, generate
    from duel.train import PairTensors, TrainConfig, init_train_state, train_step

    c = check_shape(FULL["pythia-1b"])
    ids = np.full((2, 4), 5, np.int32)
    out = generate(build_model(c, dtype=jnp.bfloat16), (ids, np.ones_like(ids)), jax.random.key(0),
                   SamplingParams(max_new_tokens=4, stop_token_ids=()), 2)
    assert out.tokens.shape == (2, 2, 4), out.tokens.shape
    cfg = TrainConfig(compute_dtype="bfloat16", micro_batches=2)
    b = {k: jnp.asarray(v) for k, v in make_batch(c, 2, 4, 4).items()}
    z = jnp.zeros(2)
    state, metrics = train_step(init_train_state(build_model(c), cfg), PairTensors(**b, ref_chosen=z, ref_rejected=z,
                                prob=z + 1, weight=z + 1), cfg)
    loss = float(metrics["loss"])
    assert np.isfinite(loss), loss
    print(f"preflight ok: generate {out.tokens.shape}, DPO step loss {loss:.4f}")
    return 0


def _load(d: Path, stage: str) -> dict | None:
    path = d / FILES[stage]
    return json.loads(path.read_text()) if path.exists() else None


def targets(d: Path) -> list[dict]:
    """One row per target of issue 10 (and the sampler / train-step issues it cites)."""
    rows = []

    def add(what, value, target, ok, src):
        rows.append({"target": what, "measured": value, "goal": target,
                     "met": "n/a" if ok is None else ("yes" if ok else "NO"), "from": src})

    s = _load(d, "sampler")
    for model in ("pythia-1b", "qwen2.5-0.5b"):
        for batch in (64, 256):
            r = next((r for r in (s or {}).get("rows", []) if r["model"] == model and r["batch"] == batch), None)
            sp = None if r is None or "speedup" not in r else r["speedup"]
            add(f"sampler {model} b{batch}: x transformers", "missing" if sp is None else f"{sp:.2f}x", ">= 10x",
                None if sp is None else sp >= 10, "sampler.json")
            if model == "pythia-1b" and batch == 256:
                rf = None if r is None else r["ours_roofline"]
                add("sampler pythia-1b b256: memory roofline", "missing" if rf is None else f"{rf:.1%}", ">= 50%",
                    None if rf is None else rf >= 0.5, "sampler.json")
    t = _load(d, "train_step")
    for shape, goal in (("pythia-1b", 1.25), ("qwen2.5-0.5b", 1.5)):
        r = next((r for r in (t or {}).get("results", []) if r.get("shape") == shape and "speedup_vs_torch" in r), None)
        sp = None if r is None else r["speedup_vs_torch"]
        add(f"train step {shape}: x torch", "missing" if sp is None else f"{sp:.2f}x", f">= {goal}x",
            None if sp is None else sp >= goal, "train_step.json")
    for shape in ("pythia-1b", "qwen2.5-0.5b"):
        e = _load(d, f"e2e-{shape}")
        g = None if e is None else e.get("generation_fraction")
        add(f"e2e {shape}: generation share of step", "missing" if g is None else f"{g:.1%}", ">= 60%",
            None if g is None else g >= 0.6, FILES[f"e2e-{shape}"])
        if shape == "pythia-1b":
            for key, what in (("publish_policy", "whole 1B policy"), ("publish_pythia_layers", "1 layer")):
                bw = (e or {}).get(key) or {}
                gbs, ratio = bw.get("packed_gbs"), bw.get("packed_vs_memcpy")
                add(f"publish pythia-1b ({what}), bf16 buckets", "missing" if gbs is None else f"{gbs:.2f} GB/s",
                    ">= 0.5x memcpy", None if ratio is None else ratio >= 0.5,
                    f"{FILES['e2e-pythia-1b']} ({'missing' if ratio is None else f'{ratio:.2f}x memcpy'})")
    m = _load(d, "memory")
    for r in (m or {}).get("results", []):
        run = r.get("device_run") or {}
        peak = run.get("peak_bytes_in_use")
        if peak:
            add(f"learner peak, device ({r['variant']})", f"{peak / GB:.1f} GB", "<= 40 GB", peak <= 40 * GB, "memory.json")
        for target, x in r["xla"].items():
            add(f"learner peak, XLA {target} ({r['variant']})", f"{x['peak'] / GB:.1f} GB", "<= 40 GB",
                x["peak"] <= 40 * GB, "memory.json")
    if m is None:
        add("learner peak (memory.json)", "missing", "<= 40 GB", None, "memory.json")
    return rows


def summary(d: Path) -> int:
    from bench.common import print_table

    rows = targets(d)
    found = [json.loads(p.read_text()) for p in d.glob("*.json")]
    machines = sorted({r.get("machine", {}).get("device") or "?" for r in found})
    check = " -- CHECK MODE (tiny shapes): the numbers mean nothing" if any(r.get("check") for r in found) else ""
    print_table(rows, title=f"issue 10 targets from {d} (device: {', '.join(machines) or '?'}){check}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("preflight")
    p.add_argument("--require-gpu", action="store_true")
    s = sub.add_parser("summary")
    s.add_argument("dir", type=Path)
    args = ap.parse_args(argv)
    return preflight(args.require_gpu) if args.cmd == "preflight" else summary(args.dir)


if __name__ == "__main__":
    sys.exit(main())

"""Peak memory of the learner's DPO train step (Pythia-1B shape, 8 pairs x 512 tokens), without allocating it.

The step is `duel.train.train_step` as the learner runs it: float32 master weights, AdamW with
global-norm clipping, bfloat16 compute, the reference log-probs arriving with the pairs (the
loop's frozen pass computes them; `reference.schedule: fixed`). Its TrainConfig is the one the
learner builds from `launch/configs/pythia-1b.yaml` (micro_batches 4), plus variants (1 micro-
batch, `remat`: per-layer recomputation, `vocab_chunk`).

Each variant is built from abstract shapes (`jax.eval_shape`: no parameter is ever allocated),
lowered and compiled, and `compiled.memory_analysis()` gives XLA's buffer assignment: arguments
(state + batch), outputs, aliased bytes (the donated state) and temporaries. peak = arguments +
outputs - aliased + temporaries: what the step needs at once. Compile targets (--targets):

- `local`: this process's backend. On CPU this is NOT the GPU peak: XLA:CPU runs bfloat16 work
  in float32 and fuses less, so it overstates activations (the JSON names the backend).
- `h100`: XLA:GPU for an H100 80GB described in a target config, compiled with no GPU present
  (deviceless AOT through `jax.experimental.topologies`; needs the JAX CUDA plugin installed, not
  a GPU). Autotuning is off in such a compile and the runtime adds its own (CUDA context, cuBLAS
  workspace, allocator slack): close to the device's buffer assignment, not a measured peak.

Next to them an analytic split: masters, AdamW moments, gradients, the bf16 compute copy, saved
activations, logits. With --run (GPU) each --run-variants variant also really runs once in a
fresh process, and the device's `peak_bytes_in_use` is reported.

    .venv/bin/python bench/memory.py                  # compile only, this backend (~1 min on CPU)
    python3 bench/memory.py --run                     # GPU: compile + one real step per variant
    JAX_PLATFORMS=cpu /tmp/aot/bin/python bench/memory.py --targets local,h100   # + H100, no GPU (docs/scale.md)
    .venv/bin/python bench/memory.py --check          # tiny shape, every path (tests)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/memory.py` from anywhere

import jax
import jax.numpy as jnp
import numpy as np

from bench.common import print_table, write_result
from bench.train_step import FULL, check_shape
from duel.models import ModelConfig, build_model, param_shapes
from duel.train import PairTensors, TrainConfig, init_train_state, train_step
from learner.configs import train_config  # no Ray: the GPU image has none

GiB = 2**30
# name -> changes to the preset's TrainConfig ("remat": per-layer recomputation, Transformer.remat)
VARIANTS = {
    "preset": {},
    "preset+remat": {"remat": True},
    "mb1": {"micro_batches": 1},
    "mb1+remat": {"micro_batches": 1, "remat": True},
    "mb1+vocab_chunk": {"micro_batches": 1, "vocab_chunk": 2048},
}


def variant_config(base: TrainConfig, name: str, check: bool = False) -> tuple[TrainConfig, bool]:
    """(TrainConfig, layer_remat) of a variant (check: vocabulary chunks scaled to the tiny batch)."""
    if name not in VARIANTS:
        raise ValueError(f"unknown memory variant {name!r}; valid: {', '.join(VARIANTS)}")
    changes = dict(VARIANTS[name])
    if check and changes.get("vocab_chunk"):
        changes["vocab_chunk"] = 16
    tcfg = dataclasses.replace(base, **changes)
    return tcfg, tcfg.remat  # TrainConfig.remat sets the model's per-layer remat


# ---------------------------------------------------------------- abstract state and batch


def abstract_state(c: ModelConfig, tcfg: TrainConfig, layer_remat: bool = False):
    """The TrainState as ShapeDtypeStructs (model, float32 masters, AdamW state): nothing allocated."""
    return jax.eval_shape(lambda: init_train_state(build_model(c, seed=0, dtype=jnp.float32, remat=layer_remat), tcfg))


def pair_batch(pairs: int, prompt: int, response: int, abstract: bool = True, vocab: int = 0) -> PairTensors:
    """A batch as the loop hands it to the learner (reference sums included): abstract, or random."""
    shapes = {"prompt_ids": (pairs, prompt), "prompt_mask": (pairs, prompt), "chosen_ids": (pairs, response),
              "chosen_mask": (pairs, response), "rejected_ids": (pairs, response), "rejected_mask": (pairs, response)}
    if abstract:
        ints = {k: jax.ShapeDtypeStruct(s, jnp.int32) for k, s in shapes.items()}
        f = jax.ShapeDtypeStruct((pairs,), jnp.float32)
        return PairTensors(**ints, ref_chosen=f, ref_rejected=f, prob=f, weight=f)
    rng = np.random.default_rng(0)
    ints = {k: jnp.asarray(rng.integers(3, vocab, s) if k.endswith("_ids") else np.ones(s), jnp.int32)
            for k, s in shapes.items()}
    ref = jnp.asarray(-rng.uniform(100, 200, (2, pairs)), jnp.float32)
    return PairTensors(**ints, ref_chosen=ref[0], ref_rejected=ref[1], prob=jnp.ones(pairs), weight=jnp.ones(pairs))


# XLA:GPU device description of an H100 SXM 80GB (the fields XLA's GPU compiler reads), for a deviceless compile
H100_TARGET = """
gpu_device_info {
  threads_per_block_limit: 1024 threads_per_warp: 32 shared_memory_per_block: 49152
  shared_memory_per_core: 233472 threads_per_core_limit: 2048 core_count: 132 fpus_per_core: 128
  block_dim_limit_x: 2147483647 block_dim_limit_y: 65535 block_dim_limit_z: 65535
  memory_bandwidth: 3352320000000 l2_cache_size: 52428800 clock_rate_ghz: 1.98
  device_memory_size: 84929347584 shared_memory_per_block_optin: 232448
  cuda_compute_capability { major: 9 } registers_per_core_limit: 65536 registers_per_block_limit: 65536
}
platform_name: "CUDA"
dnn_version_info { major: 9 minor: 7 }
runtime_version { major: 12 minor: 8 }
device_description_str: "NVIDIA H100 80GB HBM3"
"""


def target_sharding(target: str):
    """(label, sharding) to compile for: None = this process's default device."""
    if target == "local":
        return jax.default_backend(), None
    if target != "h100":
        raise ValueError(f"unknown compile target {target!r}; valid: local, h100")
    from jax.experimental import topologies

    try:
        topo = topologies.get_topology_desc(platform="cuda", target_config=H100_TARGET, topology="1x1x1")
    except Exception as e:  # noqa: BLE001  (the plugin's errors have no common type)
        raise RuntimeError(
            f"--targets h100 needs the JAX CUDA plugin of this jax ({jax.__version__}) installed (pip install "
            f"jax-cuda12-plugin=={jax.__version__} jax-cuda12-pjrt=={jax.__version__}) and, on a machine without "
            f"a GPU, JAX_PLATFORMS=cpu in the environment ({e})") from e
    mesh = topologies.make_mesh(topo, (1,), ("x",))
    return "h100-aot", jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


def _plugin_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    for name in ("jax-cuda12-plugin", "jax-cuda13-plugin"):
        try:
            return f"{name} {version(name)}"
        except PackageNotFoundError:
            pass
    return None


def compiled_memory(c: ModelConfig, tcfg: TrainConfig, layer_remat: bool, pairs: int, prompt: int, response: int,
                    sharding=None) -> dict:
    """XLA's buffer assignment for the train step (lower + compile, never run), for this backend or
    for the device of `sharding` (a deviceless topology)."""
    state, batch = abstract_state(c, tcfg, layer_remat), pair_batch(pairs, prompt, response)
    if sharding is not None:
        state, batch = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), (state, batch))
    t0 = time.perf_counter()
    compiled = train_step.lower(state, batch, tcfg).compile()
    seconds = time.perf_counter() - t0
    ma = compiled.memory_analysis()
    if ma is None:
        raise RuntimeError(f"backend {jax.default_backend()!r} gives no memory_analysis() for the train step")
    out = {k: int(getattr(ma, f"{k}_size_in_bytes")) for k in ("argument", "output", "alias", "temp", "generated_code")}
    out["peak"] = out["argument"] + out["output"] - out["alias"] + out["temp"]
    out["xla_peak_memory_in_bytes"] = getattr(ma, "peak_memory_in_bytes", None)  # XLA's own field, as reported
    out["compile_s"] = seconds
    return out


# ---------------------------------------------------------------- analytic split


def saved_per_token_layer(c: ModelConfig, seq_len: int, act_bytes: int, remat: bool, layer_remat: bool) -> float:
    """Bytes one token leaves saved per layer for the backward pass (textbook count, no fusion).

    No remat: layer input, norm outputs, roped q/k and v, attention output, MLP pre- and post-
    activation (llama, gemma: gate, act(gate), up, product), softmax probabilities in float32 and
    in the compute dtype; q/k norms (Qwen3, Gemma 3) add q and k before their norm, Gemma's norms
    after attention and MLP their outputs. Sliding-window layers count as global ones (the full
    forward masks the window; it does not shorten the scores). Layer remat (TrainConfig.remat):
    the layer input only (one layer is recomputed at a time; counted once elsewhere).
    """
    H, N, K, D, I = c.hidden_size, c.num_heads, c.num_kv_heads, c.head_dim, c.intermediate_size
    if c.family not in ("llama", "gemma", "gpt_neox"):
        raise ValueError(f"bench/memory.py: no activation count for model family {c.family!r} "
                         "(llama, gemma, gpt_neox)")
    if layer_remat:
        return act_bytes * H
    if c.family in ("llama", "gemma"):
        elems = 4 * H + 2 * N * D + 2 * K * D + 4 * I
        if c.qk_norm:
            elems += N * D + K * D  # q and k before their RMSNorm
        if c.family == "gemma":
            elems += 2 * H  # the post-attention and post-MLP norm outputs
    else:
        elems = 3 * H + 2 * N * D + 2 * K * D + 2 * I  # x, ln1, ln2 | q, k, v, attention out | pre/post gelu
    return act_bytes * elems + (4 + act_bytes) * N * seq_len


def analytic_memory(c: ModelConfig, tcfg: TrainConfig, layer_remat: bool, pairs: int, prompt: int, response: int) -> dict:
    """Bytes by kind for the step: what must exist at its peak if nothing else did."""
    n = sum(math.prod(s) for s in param_shapes(c).values())
    act = 2 if tcfg.compute_dtype == "bfloat16" else 4
    mb = tcfg.micro_batches
    seqs = 2 * pairs // mb  # chosen + rejected of one micro-batch
    seq_len = prompt + response
    per_layer = saved_per_token_layer(c, seq_len, act, tcfg.remat, layer_remat)
    activations = seqs * seq_len * c.num_layers * per_layer
    if layer_remat:  # one layer's full activations exist again while it is recomputed
        activations += seqs * seq_len * saved_per_token_layer(c, seq_len, act, False, False)
    positions = seqs * response if tcfg.vocab_chunk is None else tcfg.vocab_chunk  # a chunk is padded to full size
    parts = {
        "params_f32": 4 * n,
        "adamw_f32": 8 * n,
        "grads_f32": 4 * n * (2 if mb > 1 else 1),  # + the accumulator across micro-batches
        "compute_copy": act * n if act != 4 else 0,  # the bf16 cast of the masters
        "activations": activations,
        "logits": positions * c.vocab_size * (act + 4 + 4),  # logits, float32 log-softmax, its gradient
    }
    return {"params": n, **{k: int(v) for k, v in parts.items()}, "total": int(sum(parts.values()))}


# ---------------------------------------------------------------- a real step (GPU)


def run_one(c: ModelConfig, tcfg: TrainConfig, layer_remat: bool, pairs: int, prompt: int, response: int) -> dict:
    """Allocate the state, run one train step, read the device's peak (None where it keeps none)."""
    dev = jax.devices()[0]
    model = build_model(c, seed=0, dtype=jnp.float32, remat=layer_remat)
    state = init_train_state(model, tcfg)
    del model
    batch = pair_batch(pairs, prompt, response, abstract=False, vocab=c.vocab_size)
    before = dev.memory_stats() if hasattr(dev, "memory_stats") else None
    t0 = time.perf_counter()
    state, metrics = train_step(state, batch, tcfg)
    loss = float(metrics["loss"])
    seconds = time.perf_counter() - t0
    stats = dev.memory_stats() if hasattr(dev, "memory_stats") else None
    return {"loss": loss, "first_step_s": seconds, "bytes_in_use_before": (before or {}).get("bytes_in_use"),
            "peak_bytes_in_use": (stats or {}).get("peak_bytes_in_use"), "bytes_limit": (stats or {}).get("bytes_limit")}


def run_in_subprocess(args, variant: str, timeout: float) -> dict:
    """run_one in a fresh process, so each variant's device peak is its own."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--run-one", variant, "--shape", args.shape, "--pairs", str(args.pairs),
           "--prompt", str(args.prompt), "--response", str(args.response)] + (["--check"] if args.check else [])
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in p.stdout.splitlines():
        if line.startswith("MEMORY_RUN "):
            return json.loads(line[len("MEMORY_RUN "):])
    return {"error": f"exit {p.returncode}: {(p.stderr or p.stdout).strip()[-600:]}"}


# ---------------------------------------------------------------- main


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="pythia-1b", choices=sorted(FULL))
    ap.add_argument("--preset", default=None, help="run config whose optim/loss/policy settings the learner uses "
                    "(default: the shape's launch/configs preset)")
    ap.add_argument("--pairs", type=int, default=None, help="default 8 (check: 4)")
    ap.add_argument("--prompt", type=int, default=None, help="prompt tokens, default 256 (check: 8)")
    ap.add_argument("--response", type=int, default=None, help="response tokens, default 256 (check: 8)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--targets", default="local", help="comma list: local (this backend), h100 (deviceless XLA:GPU)")
    ap.add_argument("--run", action="store_true", help="also run --run-variants for real, one fresh process each")
    ap.add_argument("--run-variants", default="preset,mb1")
    ap.add_argument("--run-timeout", type=float, default=240.0, help="seconds per real run")
    ap.add_argument("--budget-gb", type=float, default=40.0, help="the issue's limit (decimal GB)")
    ap.add_argument("--check", action="store_true", help="tiny trunk, tiny batch: every code path, numbers meaningless")
    ap.add_argument("--name", default="memory")
    ap.add_argument("--run-one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.pairs = args.pairs or (4 if args.check else 8)
    args.prompt = args.prompt or (8 if args.check else 256)
    args.response = args.response or (8 if args.check else 256)
    c = check_shape(FULL[args.shape]) if args.check else FULL[args.shape]
    from launch.presets import load_config

    base = train_config(load_config(args.preset or args.shape))
    shape = (args.pairs, args.prompt, args.response)

    if args.run_one:  # child process of --run
        tcfg, layer_remat = variant_config(base, args.run_one, args.check)
        print("MEMORY_RUN " + json.dumps(run_one(c, tcfg, layer_remat, *shape)), flush=True)
        return None

    backend = jax.default_backend()
    targets = [target_sharding(t) for t in args.targets.split(",")]
    budget = args.budget_gb * 1e9
    rows, results = [], []
    run_names = args.run_variants.split(",") if args.run else []
    payload = {
        "shape": args.shape + (" (check: tiny trunk)" if args.check else ""),
        "model": dataclasses.asdict(c), "pairs": args.pairs, "prompt_tokens": args.prompt,
        "response_tokens": args.response, "preset": args.preset or args.shape,
        "preset_train_config": dataclasses.asdict(base), "budget_bytes": budget, "backend": backend,
        "targets": [t for t, _ in targets],
        **({"h100_target_config": H100_TARGET.strip(), "jax_cuda_plugin": _plugin_version()}
           if any(t == "h100-aot" for t, _ in targets) else {}),
        "note": (f"xla[{backend}]: buffer assignment compiled for this machine's {backend} backend. " + (
            "A CPU buffer assignment is NOT the GPU peak: XLA:CPU runs bfloat16 work in float32 and fuses "
            "less, so activations are overstated; run `python3 bench/memory.py --run` on the GPU."
            if backend == "cpu" else "Compiled for this GPU; device peaks from real steps in `device_run`.") + (
            " xla[h100-aot]: XLA:GPU buffer assignment for an H100 80GB compiled without a GPU (deviceless AOT, "
            "no autotuning; the runtime's CUDA context, cuBLAS workspace and allocator slack come on top)."
            if any(t == "h100-aot" for t, _ in targets) else "")),
        "reference_note": "reference.schedule fixed: reference log-probs arrive with the pairs. A moving "
                          "reference (ema/refresh) keeps a float32 copy of the params in the learner: +4 bytes "
                          "per parameter outside this step.",
        "peak_formula": "argument + output - alias + temp (bytes)",
        "load_average": os.getloadavg(),
        "results": results,
    }
    for name in args.variants.split(","):
        tcfg, layer_remat = variant_config(base, name, args.check)
        xla = {label: compiled_memory(c, tcfg, layer_remat, *shape, sharding=sh) for label, sh in targets}
        best = xla[max(xla, key=lambda t: ("cpu", "h100-aot", "gpu").index(t) if t in ("cpu", "h100-aot", "gpu") else -1)]
        est = analytic_memory(c, tcfg, layer_remat, *shape)
        r = {"variant": name, "micro_batches": tcfg.micro_batches, "remat": tcfg.remat, "vocab_chunk": tcfg.vocab_chunk,
             "layer_remat": layer_remat, "xla": xla, "analytic": est, "xla_within_budget": best["peak"] <= budget}
        if name in run_names:
            r["device_run"] = run_in_subprocess(args, name, args.run_timeout)
        results.append(r)
        payload["max_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # this process: no state
        write_result(args.name, payload, check=args.check)  # after every variant: a cut run keeps what it has
        run = r.get("device_run")
        dev_peak = "-" if run is None else run.get("error", "no device stats")[:40]
        if run and run.get("peak_bytes_in_use"):
            dev_peak = run["peak_bytes_in_use"] / GiB
        rows.append({"variant": name, "mb": tcfg.micro_batches, "remat": tcfg.remat, "vocab_chunk": str(tcfg.vocab_chunk),
                     "args_GiB": best["argument"] / GiB,
                     **{f"temp_GiB ({t})": x["temp"] / GiB for t, x in xla.items()},
                     **{f"peak_GiB ({t})": x["peak"] / GiB for t, x in xla.items()},
                     "analytic_GiB": est["total"] / GiB, "act_GiB": est["activations"] / GiB,
                     f"<= {args.budget_gb:g} GB": "yes" if best["peak"] <= budget else "NO",
                     "device_peak_GiB": dev_peak,
                     "compile_s": sum(x["compile_s"] for x in xla.values())})
        print(rows[-1], flush=True)
    path = write_result(args.name, payload, check=args.check)
    n = results[0]["analytic"]["params"] if results else 0
    print(payload["note"])
    print(f"params {n / 1e9:.3f} B: masters {4 * n / GiB:.2f} GiB, AdamW {8 * n / GiB:.2f} GiB, grads {4 * n / GiB:.2f} GiB "
          f"(x2 with micro-batches), bf16 copy {2 * n / GiB:.2f} GiB; wrote {path}")
    print_table(rows, title=f"train-step memory: {args.shape}{' (check)' if args.check else ''}, {args.pairs} pairs x "
                f"{args.prompt}+{args.response} tokens, AdamW, {base.compute_dtype} compute, compiled for "
                f"{', '.join(xla)}")
    return payload


if __name__ == "__main__":
    main()

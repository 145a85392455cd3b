"""LoRA at 8B scale: the DPO step's memory (XLA's compile-time count) and the publish payload.

Shape: Qwen3-8B's dimensions (hidden 4096, 36 layers, 32 heads, 8 kv heads, head_dim 128,
intermediate 12288, vocab 151936, untied head) in duel's `llama` family: Qwen3's per-head q/k
RMSNorm scales (2 x 128 parameters per layer) are not in this stand-in; everything that costs
memory is. LoRA rank 16, alpha 32 on q, k, v, o, gate, up, down.

1. memory: `duel.train.train_step` as the learner runs it with `policy.lora` (frozen base in
   bfloat16, float32 adapter masters + AdamW, bf16 compute, DPO, reference log-probs arriving with
   the pairs: `reference.schedule: fixed`, which with LoRA costs nothing more), 8 pairs x (256
   prompt + 256 response) tokens, built from abstract shapes (nothing allocated), lowered and
   compiled; peak = argument + output - alias + temp of XLA's buffer assignment (bench/memory.py).
   `--targets h100` compiles for an H100 80GB with no GPU (deviceless XLA:GPU; needs the JAX CUDA
   plugin): PREDICTED, not a measured device peak.
2. publish: the adapters of that shape, packed by duel.transport.pack into the bf16 buckets the
   learner puts in the object store (what `Learner.publish` sends when the generators hold the
   base), measured, against the whole model in bf16 (what a full fine-tune publishes).

    JAX_PLATFORMS=cpu /tmp/aot/bin/python bench/lora.py --targets h100   # deviceless H100 compile
    .venv/bin/python bench/lora.py --check                               # tiny shape, every path
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np

from bench.common import print_table, write_result
from bench.memory import pair_batch, target_sharding
from duel.models import ModelConfig, build_model, param_shapes
from duel.models import lora
from duel.train import TrainConfig, init_train_state, train_step

QWEN3_8B = ModelConfig(
    family="llama", vocab_size=151936, hidden_size=4096, num_layers=36, num_heads=32, num_kv_heads=8,
    head_dim=128, intermediate_size=12288, rope_theta=1e6, norm_eps=1e-6, max_position_embeddings=40960,
    tie_word_embeddings=False, architecture="LlamaForCausalLM")
SPEC = lora.LoraSpec(rank=16, alpha=32.0, targets=lora.TARGETS)
GB = 1e9


def tiny(c: ModelConfig) -> ModelConfig:
    return dataclasses.replace(c, vocab_size=512, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                               head_dim=16, intermediate_size=128, rotary_dim=16)


def lora_model(c: ModelConfig, spec: LoraSpec, remat: bool):
    """The learner's policy under LoRA: the base in bf16 (Frozen), float32 adapters."""
    model = build_model(c, seed=0, dtype=jnp.bfloat16, remat=remat)
    shapes = lora.adapter_shapes(spec, c)
    return lora.attach(model, spec, adapters={n: jnp.zeros(s, jnp.float32) for n, s in shapes.items()})


LoraSpec = lora.LoraSpec


def compiled_memory(c, spec, tcfg, pairs, prompt, response, sharding=None) -> dict:
    state = jax.eval_shape(lambda: init_train_state(lora_model(c, spec, tcfg.remat), tcfg))
    batch = pair_batch(pairs, prompt, response)
    if sharding is not None:
        state, batch = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), (state, batch))
    t0 = time.perf_counter()
    compiled = train_step.lower(state, batch, tcfg).compile()
    ma = compiled.memory_analysis()
    out = {k: int(getattr(ma, f"{k}_size_in_bytes")) for k in ("argument", "output", "alias", "temp")}
    out["peak"] = out["argument"] + out["output"] - out["alias"] + out["temp"]
    out["compile_s"] = time.perf_counter() - t0
    out["state_bytes"] = int(sum(math.prod(x.shape) * jnp.dtype(x.dtype).itemsize for x in jax.tree.leaves(state)))
    return out


def publish_payload(c: ModelConfig, spec: LoraSpec) -> dict:
    """Pack real adapters of this shape as the learner publishes them (bf16 buckets); measured."""
    from duel.transport import pack

    adapters = {n: np.asarray(v) for n, v in lora.init_adapters(spec, c, seed=0).items()}
    t0 = time.perf_counter()
    buffers, pspec = pack(adapters, jnp.bfloat16)
    seconds = time.perf_counter() - t0
    full = sum(math.prod(s) for s in param_shapes(c).values())
    return {"adapter_params": int(sum(v.size for v in adapters.values())),
            "payload_bytes": int(pspec.payload_bytes), "buffer_bytes": int(sum(b.nbytes for b in buffers)),
            "buckets": len(buffers), "pack_s": seconds, "full_model_params": int(full),
            "full_model_bf16_bytes": int(full * 2)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", default="local", help="comma list: local, h100 (deviceless XLA:GPU)")
    ap.add_argument("--variants", default="lora,lora+remat")
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--response", type=int, default=256)
    ap.add_argument("--check", action="store_true", help="tiny shape: every code path, numbers meaningless")
    args = ap.parse_args(argv)
    c = tiny(QWEN3_8B) if args.check else QWEN3_8B
    shape = (4, 8, 8) if args.check else (args.pairs, args.prompt, args.response)
    base = TrainConfig(loss="dpo", beta=0.1, lr=1e-5, compute_dtype="bfloat16", micro_batches=1)
    rows, results = [], []
    for target in args.targets.split(","):
        label, sharding = target_sharding(target)
        for v in args.variants.split(","):
            tcfg = dataclasses.replace(base, remat=v.endswith("+remat"))
            m = compiled_memory(c, SPEC, tcfg, *shape, sharding=sharding)
            results.append({"target": label, "variant": v, **m})
            rows.append({"target": label, "variant": v, "peak GB (predicted)": m["peak"] / GB,
                         "state GB": m["state_bytes"] / GB, "temp GB": m["temp"] / GB, "compile s": m["compile_s"]})
    pub = publish_payload(c, SPEC)
    rows.append({"target": "publish (measured pack)", "variant": f"adapters r={SPEC.rank}",
                 "peak GB (predicted)": pub["payload_bytes"] / GB, "state GB": pub["full_model_bf16_bytes"] / GB,
                 "temp GB": float("nan"), "compile s": pub["pack_s"]})
    payload = {
        "shape": "Qwen3-8B dimensions in the llama family (no q/k norm)" + (" (check: tiny)" if args.check else ""),
        "model": dataclasses.asdict(c), "lora": dataclasses.asdict(SPEC), "pairs": shape[0],
        "prompt_tokens": shape[1], "response_tokens": shape[2], "train_config": dataclasses.asdict(base),
        "note": "PREDICTED: XLA's buffer assignment (argument + output - alias + temp) of the compiled step; "
                "h100-aot = XLA:GPU for an H100 80GB compiled without a GPU (no autotuning; CUDA context, "
                "cuBLAS workspace and allocator slack come on top). The publish row is measured: bytes of the "
                "packed bf16 adapters (payload) against the whole model in bf16 (state GB column).",
        "load_average": os.getloadavg(), "results": results, "publish": pub,
    }
    path = write_result("lora", payload, check=args.check)
    print_table(rows, f"LoRA r={SPEC.rank}, {shape[0]} pairs x {shape[1]}+{shape[2]} tokens -> {path}")
    return payload


if __name__ == "__main__":
    main()

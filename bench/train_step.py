"""One DPO step, JAX (ours) vs PyTorch + transformers (eager), on the Pythia-1B and Qwen2.5-0.5B shapes.

A step = reference forward (log-prob sums of chosen and rejected) + policy forward and backward
(chosen and rejected in one pass) + AdamW with global-norm clipping, on `pairs` pairs of
`prompt + response` tokens, computing in bfloat16 from float32 master weights.

    .venv/bin/python bench/train_step.py            # CPU: tiny shapes (same vocabularies), minutes
    .venv/bin/python bench/train_step.py --full     # GPU: real shapes, 8 pairs x 512 tokens
    .venv/bin/python bench/train_step.py --check    # the --full code path on tiny trunks, seconds (tests)

Reports tokens/s (policy tokens: 2 * pairs * (prompt + response)), model-FLOP utilisation
against this machine's measured bf16 matmul rate, and peak memory for both implementations:
the device's peak where it reports one (GPU; process-wide, so a later JAX variant shows the max
so far), and for JAX also the compiler's estimate of the train step's live bytes plus the
reference parameters (the only memory figure on CPU).
Model FLOPs per step (PaLM appendix B convention, causal attention counted in full):
policy 6 N + 12 L H Q T and reference 2 N + 4 L H Q T per token, N = non-embedding matmul
parameters including the LM head.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/train_step.py` from anywhere

from bench.common import matmul_tflops, print_table, timeit, write_result
from duel.models import ModelConfig, build_model
from duel.train import PairTensors, TrainConfig, init_train_state, train_step, with_reference

FULL = {
    "pythia-1b": ModelConfig(
        family="gpt_neox", vocab_size=50304, hidden_size=2048, num_layers=16, num_heads=8, num_kv_heads=8,
        head_dim=256, intermediate_size=8192, rotary_dim=64, norm_eps=1e-5, attention_bias=True,
        parallel_residual=True, hidden_act="gelu", max_position_embeddings=2048, architecture="GPTNeoXForCausalLM",
    ),
    "qwen2.5-0.5b": ModelConfig(
        family="llama", vocab_size=151936, hidden_size=896, num_layers=24, num_heads=14, num_kv_heads=2,
        head_dim=64, intermediate_size=4864, rope_theta=1e6, norm_eps=1e-6, tie_word_embeddings=True,
        attention_bias=True, max_position_embeddings=32768, architecture="Qwen2ForCausalLM",
    ),
}


def tiny(c: ModelConfig) -> ModelConfig:
    """CPU stand-in: the same family, vocabulary and head grouping, a small trunk."""
    heads, kv = (4, 4) if c.family == "gpt_neox" else (4, 2)
    return dataclasses.replace(c, hidden_size=128, num_layers=2, num_heads=heads, num_kv_heads=kv, head_dim=32,
                               intermediate_size=512, rotary_dim=8 if c.family == "gpt_neox" else 0)


def check_shape(c: ModelConfig) -> ModelConfig:
    """--check stand-in: the tiny trunk with a small vocabulary (the code path, not the numbers)."""
    return dataclasses.replace(tiny(c), vocab_size=512)


def matmul_params(c: ModelConfig) -> int:
    """Parameters that take part in matmuls per token (embedding lookup excluded, LM head included)."""
    H, L = c.hidden_size, c.num_layers
    attn = H * (c.num_heads + 2 * c.num_kv_heads) * c.head_dim + c.num_heads * c.head_dim * H
    mlp = (3 if c.family == "llama" else 2) * H * c.intermediate_size
    return L * (attn + mlp) + H * c.vocab_size


def step_flops(c: ModelConfig, sequences: int, seq_len: int) -> float:
    tokens = sequences * seq_len
    n = matmul_params(c)
    attn = c.num_layers * c.num_heads * c.head_dim * seq_len  # L H Q T
    return tokens * ((6 * n + 12 * attn) + (2 * n + 4 * attn))


def make_batch(c: ModelConfig, pairs: int, prompt: int, response: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)

    def ids(n):
        return rng.integers(3, c.vocab_size, (pairs, n)).astype(np.int32)

    return {
        "prompt_ids": ids(prompt), "prompt_mask": np.ones((pairs, prompt), np.int32),
        "chosen_ids": ids(response), "chosen_mask": np.ones((pairs, response), np.int32),
        "rejected_ids": ids(response), "rejected_mask": np.ones((pairs, response), np.int32),
    }


# ---------------------------------------------------------------- ours


def run_jax(c: ModelConfig, b: dict, args, vocab_chunk: int | None) -> dict:
    cfg = TrainConfig(loss="dpo", beta=0.1, lr=1e-6, warmup_steps=10, total_steps=1000, clip_norm=1.0,
                      compute_dtype="bfloat16", vocab_chunk=vocab_chunk, remat=False)
    model = build_model(c, seed=0, dtype=jnp.float32, remat=args.remat)
    state = init_train_state(model, cfg)
    ref_params = jax.tree.map(lambda x: x.astype(jnp.bfloat16), state.params)
    del model
    pairs = b["prompt_ids"].shape[0]
    batch = PairTensors(**{k: jnp.asarray(v) for k, v in b.items()}, ref_chosen=jnp.zeros(pairs), ref_rejected=jnp.zeros(pairs),
                        prob=jnp.ones(pairs), weight=jnp.ones(pairs))
    box = {"state": state}

    def step():
        full = with_reference(batch, box["state"], ref_params, cfg)
        box["state"], metrics = train_step(box["state"], full, cfg)
        jax.block_until_ready(metrics["loss"])

    t0 = time.perf_counter()
    step()
    compile_s = time.perf_counter() - t0
    seconds = timeit(step, warmup=1, repeat=args.repeat)
    dev = jax.devices()[0]
    stats = dev.memory_stats() if hasattr(dev, "memory_stats") else None
    peak = stats.get("peak_bytes_in_use") if stats else None
    # where the device reports no peak (CPU), use the compiler's estimate for the train step
    compiled = train_step.lower(box["state"], with_reference(batch, box["state"], ref_params, cfg), cfg).compile()
    ma = compiled.memory_analysis()
    estimate = None
    if ma is not None:  # train step live bytes (state, batch, temporaries) + the bf16 reference params
        estimate = ma.argument_size_in_bytes + ma.output_size_in_bytes + ma.temp_size_in_bytes - ma.alias_size_in_bytes
        estimate += sum(x.nbytes for x in jax.tree.leaves(ref_params))
    # device peak is process-wide: for the second JAX variant it is the max over both
    return {"seconds": seconds, "compile_s": compile_s, "peak_bytes": peak, "bytes_estimate": estimate}


# ---------------------------------------------------------------- the PyTorch + transformers peer


def run_torch(c: ModelConfig, b: dict, args) -> dict:
    import torch
    import transformers

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    torch.manual_seed(0)
    if not cuda:
        torch.set_num_threads(max(1, os.cpu_count() or 1))
    hf = c.to_hf()
    hf_cfg = transformers.AutoConfig.for_model(hf.pop("model_type"), **{k: v for k, v in hf.items() if k != "architectures"})
    hf_cfg._attn_implementation = args.torch_attn
    with torch.device(device):  # init on the GPU: on the host a 1B random init took 20 s (2-core VM)
        policy = transformers.AutoModelForCausalLM.from_config(hf_cfg, dtype=torch.float32).to(device)
        reference = transformers.AutoModelForCausalLM.from_config(hf_cfg, dtype=torch.bfloat16).to(device).eval()
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-6, weight_decay=0.0, fused=cuda)
    t = {k: torch.as_tensor(v, device=device, dtype=torch.long) for k, v in b.items()}
    tp = t["prompt_ids"].shape[1]
    ids = torch.cat([torch.cat([t["prompt_ids"], t["chosen_ids"]], 1), torch.cat([t["prompt_ids"], t["rejected_ids"]], 1)])
    mask = torch.cat([torch.cat([t["prompt_mask"], t["chosen_mask"]], 1), torch.cat([t["prompt_mask"], t["rejected_mask"]], 1)])
    rmask = mask[:, tp:].float()
    n = ids.shape[0] // 2

    def sums(logits):
        logp = torch.log_softmax(logits[:, tp - 1 : -1].float(), -1)
        return (torch.gather(logp, -1, ids[:, tp:, None])[..., 0] * rmask).sum(-1)

    def step():
        with torch.no_grad():
            ref = sums(reference(input_ids=ids, attention_mask=mask).logits)
        with torch.autocast(device, dtype=torch.bfloat16):
            logits = policy(input_ids=ids, attention_mask=mask).logits
        pi = sums(logits)
        h = (pi[:n] - ref[:n]) - (pi[n:] - ref[n:])
        loss = -torch.nn.functional.logsigmoid(0.1 * h).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()

    if cuda:
        torch.cuda.reset_peak_memory_stats()
    seconds = timeit(step, warmup=1, repeat=args.repeat)
    peak = torch.cuda.max_memory_allocated() if cuda else None
    return {"seconds": seconds, "peak_bytes": peak}


# ---------------------------------------------------------------- main


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--full", action="store_true", help="real model shapes, 8 pairs x 512 tokens (for a GPU)")
    ap.add_argument("--check", action="store_true",
                    help="the --full code path (two vocab_chunk runs, the torch peer) on tiny trunks, 2 pairs x 8+8 tokens")
    ap.add_argument("--shapes", default="pythia-1b,qwen2.5-0.5b")
    ap.add_argument("--pairs", type=int, default=None)
    ap.add_argument("--prompt", type=int, default=None, help="prompt tokens (default: half the sequence)")
    ap.add_argument("--response", type=int, default=None)
    ap.add_argument("--vocab-chunk", default=None,
                    help="comma list of token positions per vocabulary-projection chunk, 0 = all at once "
                         "(default: 0,2048 with --full, 0,64 otherwise); one JAX run per value")
    ap.add_argument("--remat", action="store_true", help="per-layer rematerialisation")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--torch-attn", default="sdpa", help="transformers attention implementation (eager, sdpa)")
    args = ap.parse_args(argv)
    args.full = args.full and not args.check  # --check wins: never full shapes on the way to a test
    pairs = args.pairs or (8 if args.full else 2)
    prompt = args.prompt or (256 if args.full else 8 if args.check else 32)
    response = args.response or (256 if args.full else 8 if args.check else 32)
    chunks = [int(x) or None for x in (args.vocab_chunk or ("0,2048" if args.full else "0,16" if args.check else "0,64")).split(",")]
    if args.check:
        args.repeat = 1

    on_gpu = jax.default_backend() == "gpu"
    # --check: a 256-cube (the rate only feeds mfu_pct, meaningless at check shapes; the 1024-cube took
    # seconds in bf16 on a loaded 2-core CPU)
    peak_tflops = matmul_tflops(8192 if on_gpu else 256 if args.check else 1024, "bfloat16")
    rows, results = [], []
    note = (
        "measured on GPU" if on_gpu else
        "CPU run with tiny trunks (real vocabularies); GPU numbers were NOT measured - rerun with --full on a GPU"
    )
    payload = {
        "note": note, "full_shapes": args.full, "check": args.check, "pairs": pairs, "prompt_tokens": prompt,
        "response_tokens": response, "vocab_chunks": chunks, "remat": args.remat,
        "load_average": os.getloadavg(), "torch_attn": args.torch_attn, "bf16_matmul_tflops": peak_tflops,
        "results": results,
    }
    for name in args.shapes.split(","):
        c = FULL[name] if args.full else check_shape(FULL[name]) if args.check else tiny(FULL[name])
        b = make_batch(c, pairs, prompt, response)
        flops = step_flops(c, 2 * pairs, prompt + response)
        tokens = 2 * pairs * (prompt + response)
        impls = {}
        for chunk in chunks:
            impls[f"duel (jax, vocab_chunk={chunk})"] = run_jax(c, b, args, chunk)
        best = min(impls, key=lambda k: impls[k]["seconds"])
        if not args.no_torch:
            impls["transformers (torch)"] = run_torch(c, b, args)
        for impl, r in impls.items():
            peak, est = r.get("peak_bytes"), r.get("bytes_estimate")
            row = {
                "shape": name + ("" if args.full else " (check)" if args.check else " (tiny)"),
                "impl": impl,
                "step_s": r["seconds"],
                "tokens_per_s": tokens / r["seconds"],
                "tflops": flops / r["seconds"] / 1e12,
                "mfu_pct": 100 * flops / r["seconds"] / 1e12 / peak_tflops,
                "peak_mem_gib": (peak / 2**30) if peak else "n/a",
                "mem_estimate_gib": (est / 2**30) if est else "n/a",
            }
            rows.append(row)
            results.append({**row, **r, "config": dataclasses.asdict(c), "flops_per_step": flops, "tokens_per_step": tokens})
        if "transformers (torch)" in impls:
            speedup = impls["transformers (torch)"]["seconds"] / impls[best]["seconds"]
            results.append({"shape": name, "speedup_vs_torch": speedup, "best_jax": best})
            rows.append({"shape": name, "impl": "speedup best jax / torch", "step_s": "", "tokens_per_s": f"{speedup:.2f}x",
                         "tflops": "", "mfu_pct": "", "peak_mem_gib": "", "mem_estimate_gib": ""})
        payload["max_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        write_result("train_step", payload, check=args.check)  # every shape: a cut run keeps what it has
    path = write_result("train_step", payload, check=args.check)
    print(note)
    print(f"measured bf16 matmul rate: {peak_tflops:.3g} TFLOP/s; wrote {path}")
    print_table(rows, title=f"one DPO step: {pairs} pairs x {prompt}+{response} tokens, bf16 compute, AdamW")
    return payload


if __name__ == "__main__":
    main()

"""Policy-server throughput: generated tokens/s of duel.sampling.generate vs transformers generate.

Random bf16 weights, full-length prompts, EOS ignored (every sequence runs max_new_tokens).
Shapes: Pythia-1B (gpt_neox) and Qwen2.5-0.5B (llama family). Besides tok/s it reports the
fraction of the memory roofline: (weights + KV-cache bytes read by every decode step) / measured
copy bandwidth, over the measured wall time (prefill and sampling included).

    .venv/bin/python bench/sampler.py            # CPU: scaled-down shapes, a few minutes
    .venv/bin/python bench/sampler.py --full     # real shapes, batch 16/64/256, prompt 128, 128 new
    .venv/bin/python bench/sampler.py --check    # the --full code path on stand-in shapes, seconds (tests)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax
import jax.numpy as jnp
import numpy as np

from bench.common import copy_bandwidth_gbs, machine, print_table, timeit, write_result
from duel.models import ModelConfig, build_model
from duel.sampling import SamplingParams, generate

PYTHIA_1B = {
    "architectures": ["GPTNeoXForCausalLM"], "model_type": "gpt_neox", "hidden_size": 2048,
    "num_hidden_layers": 16, "num_attention_heads": 8, "intermediate_size": 8192,
    "vocab_size": 50304, "rotary_pct": 0.25, "rotary_emb_base": 10000, "use_parallel_residual": True,
    "hidden_act": "gelu", "layer_norm_eps": 1e-5, "max_position_embeddings": 2048,
    "tie_word_embeddings": False, "bos_token_id": 0, "eos_token_id": 0,
}
QWEN25_05B = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 896,
    "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
    "intermediate_size": 4864, "vocab_size": 151936, "tie_word_embeddings": True,
    "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "hidden_act": "silu",
    "max_position_embeddings": 32768, "bos_token_id": 151643, "eos_token_id": 151643,
}
# CPU stand-ins: same families and layouts (GQA 7:1 -> 2:1, tied head, partial rotary), ~1/8 width
TINY = {
    "pythia-1b": {**PYTHIA_1B, "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
                  "intermediate_size": 1024, "vocab_size": 4096},
    "qwen2.5-0.5b": {**QWEN25_05B, "hidden_size": 128, "num_hidden_layers": 4,
                     "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 704,
                     "vocab_size": 8192, "bos_token_id": 1, "eos_token_id": 1},
}
FULL = {"pythia-1b": PYTHIA_1B, "qwen2.5-0.5b": QWEN25_05B}
# --check: the --full path on 2-layer, 64-wide stand-ins (every option, numbers meaningless)
CHECK = {k: {**v, "num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 256, "vocab_size": 512}
         for k, v in TINY.items()}


def decode_bytes(cfg: ModelConfig, batch: int, prompt_len: int, new_tokens: int) -> float:
    """Bytes a perfect decoder reads for new_tokens - 1 steps: all weights once per step (an
    untied input embedding is only gathered, not read) plus the filled KV cache, bf16."""
    from duel.models import param_shapes

    weights = sum(int(np.prod(s)) for s in param_shapes(cfg).values())
    if not cfg.tie_word_embeddings:
        weights -= cfg.vocab_size * cfg.hidden_size
    kv_per_slot = 2 * cfg.num_layers * cfg.num_kv_heads * cfg.head_dim  # k and v, all layers
    steps = np.arange(1, new_tokens)
    slots = batch * np.sum(prompt_len + steps)  # step t attends over prompt_len + t slots
    return 2.0 * (weights * len(steps) + kv_per_slot * slots)


def ours(cfg, batch, n, prompt_len, new_tokens, repeat, length_buckets=None):
    model = build_model(cfg, seed=0, dtype=jnp.bfloat16)
    ids = np.random.default_rng(0).integers(2, cfg.vocab_size, (batch // n, prompt_len)).astype(np.int32)
    prompts = (ids, np.ones_like(ids))
    params = SamplingParams(temperature=1.0, max_new_tokens=new_tokens, stop_token_ids=())
    key = jax.random.key(0)
    t0 = time.perf_counter()
    out = generate(model, prompts, key, params, n, length_buckets=length_buckets)
    first = time.perf_counter() - t0
    assert out.tokens.shape == (batch // n, n, new_tokens) and (out.lengths == new_tokens).all()
    t = timeit(lambda: generate(model, prompts, key, params, n, length_buckets=length_buckets),
               warmup=0, repeat=repeat)
    return t, first


def peer(hf_cfg, batch, n, prompt_len, new_tokens, repeat, warmup):
    """transformers generate (torch, bf16, its default dynamic cache) on the same shapes."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    d = {k: v for k, v in hf_cfg.items() if k not in ("architectures", "model_type")}
    config = AutoConfig.for_model(hf_cfg["model_type"], **d)
    torch.manual_seed(0)
    with torch.device(device):  # init on the GPU: on the host a 1B random init took 20 s (2-core VM)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).to(device).eval()
    ids = torch.randint(2, hf_cfg["vocab_size"], (batch // n, prompt_len), device=device)
    kwargs = {"attention_mask": torch.ones_like(ids), "do_sample": True, "temperature": 1.0,
              "top_k": 0, "top_p": 1.0, "max_new_tokens": new_tokens,
              "min_new_tokens": new_tokens, "num_return_sequences": n,
              "pad_token_id": hf_cfg["eos_token_id"]}

    def run():
        with torch.no_grad():
            out = model.generate(ids, **kwargs)
        if device == "cuda":
            torch.cuda.synchronize()
        assert out.shape == (batch, prompt_len + new_tokens)

    return timeit(run, warmup=warmup, repeat=repeat)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="real shapes (for a GPU)")
    ap.add_argument("--check", action="store_true",
                    help="the --full code path (peer warm-up, both caches) on 2-layer stand-ins, batch 2 and 4, 8 + 8 tokens")
    ap.add_argument("--batches", type=int, nargs="+", help="sequences per call (default 16 64 256; CPU 8 32 128)")
    ap.add_argument("--prompt-len", type=int, help="default 128 (CPU 32)")
    ap.add_argument("--new-tokens", type=int, help="default 128 (CPU 32)")
    ap.add_argument("--n", type=int, default=1, help="candidates per prompt (batch = prompts * n)")
    ap.add_argument("--models", nargs="+", default=list(FULL), choices=list(FULL))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-peer", action="store_true", help="skip transformers generate")
    ap.add_argument("--no-plain", action="store_true", help="skip the single full-length cache")
    ap.add_argument("--name", default="sampler")
    ap.add_argument("--attention", default="xla", choices=("xla", "cudnn"),
                    help="cudnn: the what-if of bench.common.use_cudnn_attention (not the product); on a "
                         "CPU it falls back to XLA's attention and says so. Name its JSON apart from "
                         "sampler*.json (bench/gpu_vs_model.py reads those as the product's numbers)")
    args = ap.parse_args(argv)
    attention = "xla"
    if args.attention == "cudnn":
        from bench.common import use_cudnn_attention

        attention = "cudnn" if use_cudnn_attention() else "xla (cudnn asked; no CUDA here)"
        print(f"attention: {attention}", flush=True)
    full_path = args.full or args.check  # the GPU run's options: peer warm-up, its repeat count
    shapes = CHECK if args.check else FULL if args.full else TINY
    batches = args.batches or ([2, 4] if args.check else [16, 64, 256] if args.full else [8, 32, 128])
    prompt_len = args.prompt_len or (8 if args.check else 128 if args.full else 32)
    new_tokens = args.new_tokens or (8 if args.check else 128 if args.full else 32)
    repeat = 1 if args.check else args.repeat

    gpu = jax.default_backend() == "gpu"
    bandwidth = (copy_bandwidth_gbs(1 << 30, passes=20) if gpu  # check: numbers meaningless
                 else copy_bandwidth_gbs(16 << 20 if args.check else 256 << 20))
    rows = []
    mode = "check (2-layer stand-ins)" if args.check else "full shapes" if args.full else "CPU stand-in shapes (scaled down)"
    payload = {
        "mode": mode,
        "note": None if gpu else (
            "CPU only: GPU numbers were NOT measured (no GPU in this session). Run "
            "`bench/sampler.py --full` on an H100/H200 for the issue's targets."),
        "load_average": os.getloadavg(),
        "copy_bandwidth_gbs": bandwidth,
        "dtype": "bfloat16", "prompt_len": prompt_len, "new_tokens": new_tokens, "n": args.n,
        "sampling": "temperature 1, no top-k/top-p, EOS ignored",
        "attention": attention,
        "attention_parity": None,
        "peer": "transformers generate (torch, bf16, default dynamic cache, do_sample)",
        "shapes": {k: shapes[k] for k in args.models},
        "rows": rows,
    }
    if args.attention == "cudnn":  # the what-if's numbers against the plain reference, before any timing
        from bench.common import attention_parity

        payload["attention_parity"] = attention_parity()
        print(f"attention parity: {payload['attention_parity']}", flush=True)
    for name in args.models:
        hf_cfg = shapes[name]
        cfg = ModelConfig.from_hf(hf_cfg)
        for batch in batches:
            tokens = batch * new_tokens
            ideal = decode_bytes(cfg, batch, prompt_len, new_tokens) / (bandwidth * 1e9)
            t, first = ours(cfg, batch, args.n, prompt_len, new_tokens, repeat)
            row = {"model": name, "batch": batch, "ours_tok_s": tokens / t,
                   "ours_roofline": ideal / t, "ours_first_call_s": first}
            if not args.no_plain:
                tp, _ = ours(cfg, batch, args.n, prompt_len, new_tokens, repeat, length_buckets=1)
                row["plain_cache_tok_s"] = tokens / tp
            if not args.no_peer:
                # torch bf16 on a CPU is slow: one untimed-warmup-free run there; on a GPU one warm-up
                # run per model (at its first batch size), then max(1, repeat - 1) timed runs
                tq = peer(hf_cfg, batch, args.n, prompt_len, new_tokens,
                          repeat=max(1, repeat - 1) if full_path else 1,
                          warmup=1 if full_path and batch == batches[0] else 0)
                row.update({"peer_tok_s": tokens / tq, "peer_roofline": ideal / tq, "speedup": tq / t})
            rows.append(row)
            print(row, flush=True)
            path = write_result(args.name, payload, check=args.check)  # every row: a cut run keeps what it has

    dev = machine()
    path = write_result(args.name, payload, check=args.check)
    print_table(rows, title=f"sampler ({mode}; {dev['device']}; copy {bandwidth:.1f} GB/s)"
                + ("" if gpu else " -- GPU not measured"))
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()

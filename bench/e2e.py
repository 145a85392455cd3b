"""One full loop step on one device, random weights, rule oracle: labelled pairs/s and the time split.

A step = generate M candidates per prompt (policy, KV cache) -> frozen score pass (reference
log-probs + features) -> select the pair (ERM rewards + Thompson-sampling strategy) -> rule
oracle -> learn (ERM update + DPO train step, float32 masters + AdamW) -> publish (pack the
policy in bf16 into host buckets, unpack into the generator's copy). Everything runs in this
process, no Ray: the time split shows what the loop costs before any orchestration overhead.

    .venv/bin/python bench/e2e.py                          # CPU: tiny shapes
    .venv/bin/python bench/e2e.py --shape pythia-1b        # GPU: real shape, bf16 generation
    .venv/bin/python bench/e2e.py --shape qwen2.5-0.5b
    .venv/bin/python bench/e2e.py --shape pythia-1b --check   # that code path on a 2-layer stand-in (tests)

Also measures publish bandwidth (GB/s of published bytes) for the packed bucket path the loop
uses (duel.transport pack + unpack), for the per-leaf path it replaced (one host array per
leaf, kept here as the baseline) and a plain host memory copy of the same bytes, on the step's
policy and on a larger payload (`--publish-layers` Pythia-1B-shaped layers, f32 masters -> bf16).
Writes bench/results/e2e.json (or --out NAME).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python bench/e2e.py` works too
from bench.common import print_table, timeit, write_result
from bench.train_step import FULL, check_shape
from duel.models import ModelConfig, build_model, param_shapes
from duel.oracles.rule import register_reward

PHASES = ("generate", "score", "select", "oracle", "learn", "publish")


@register_reward("e2e_even_tokens")
def even_tokens(prompt: str, response: str) -> float:
    """Rule reward on token-id text: the fraction of even token ids (learnable, cheap)."""
    ids = [int(t) for t in response.split()]
    return sum(i % 2 == 0 for i in ids) / max(len(ids), 1)


def tiny_config() -> ModelConfig:
    return ModelConfig(family="llama", vocab_size=256, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                       head_dim=16, intermediate_size=128, max_position_embeddings=256, eos_token_id=(1,),
                       pad_token_id=0)


PRESETS = {  # shape -> (config, prompts, candidates, prompt_len, new_tokens, compute dtype)
    "tiny": (tiny_config(), 4, 4, 8, 8, "float32"),
    "pythia-1b": (FULL["pythia-1b"], 8, 4, 128, 256, "bfloat16"),
    "qwen2.5-0.5b": (FULL["qwen2.5-0.5b"], 8, 4, 128, 256, "bfloat16"),
}


@dataclasses.dataclass
class Loop:
    """The step's state: generator copies (policy + frozen encoder), ERM, learner state, oracle."""

    args: argparse.Namespace

    def __post_init__(self):
        from duel.ensemble import ERM, ERMConfig
        from duel.oracles import make_oracle
        from duel.sampling import SamplingParams
        from duel.train import TrainConfig, init_train_state
        from duel.transport import LocalTransport

        a = self.args
        c, self.P, self.M, self.Tp, self.N, dtype = PRESETS[a.shape]
        if getattr(a, "check", False):  # --check: same family, options and dtype; tiny trunk and batch
            c, self.P, self.Tp, self.N = (c if a.shape == "tiny" else check_shape(c)), 2, 8, 8
        self.P, self.M = a.prompts or self.P, a.candidates or self.M
        self.Tp, self.N = a.prompt_len or self.Tp, a.new_tokens or self.N
        self.config = c
        cdt = jnp.dtype(a.dtype or dtype)
        self.policy = build_model(c, seed=0, dtype=cdt)  # generator's inference copy
        self.encoder = build_model(c, seed=0, dtype=cdt)  # frozen reference / encoder
        self.tcfg = TrainConfig(loss="dpo", beta=0.1, lr=1e-6, compute_dtype=cdt.name,
                                vocab_chunk=a.vocab_chunk)
        self.state = init_train_state(build_model(c, seed=0, dtype=jnp.float32), self.tcfg)
        self.erm = ERM.create(c.hidden_size, ERMConfig(num_members=8, hidden=(64, 64)), jax.random.key(1))
        # random weights rarely emit EOS: no stop ids, every candidate has N tokens (fixed work)
        self.sampling = SamplingParams(temperature=1.0, max_new_tokens=self.N, stop_token_ids=(), pad_token_id=0)
        self.oracle = make_oracle({"kind": "rule", "reward": "e2e_even_tokens", "tau": 0.1})
        self.transport = LocalTransport(jnp.dtype(cdt), bucket_bytes=a.bucket_mb << 20)
        rng = np.random.default_rng(0)
        self.prompt_ids = rng.integers(2, c.vocab_size, (self.P, self.Tp)).astype(np.int32)
        self.queries = 0

    def step(self, t: int) -> dict[str, float]:
        from flax import nnx

        from duel.ensemble import rewards
        from duel.ensemble import update as erm_update
        from duel.explore import select_pairs
        from duel.oracles import sample_labels
        from duel.propose import candidate_ids, decode, frozen_pass
        from duel.records import CandidateBatch, LabeledBatch, PairBatch, PromptBatch
        from duel.sampling import generate
        from duel.train import pairs_from_labeled, train_step

        times = {}
        key = jax.random.fold_in(jax.random.key(0), t)
        prompts = PromptBatch(prompt_ids=[f"p{i}" for i in range(self.P)],
                              texts=[" ".join(map(str, r)) for r in self.prompt_ids],
                              input_ids=self.prompt_ids, attention_mask=np.ones_like(self.prompt_ids), step=t)
        t0 = time.perf_counter()
        out = generate(self.policy, prompts, key, self.sampling, self.M)
        t1 = time.perf_counter()
        ref_lp, feats = frozen_pass(self.encoder, prompts, out.tokens, out.mask, chunk=self.args.score_chunk)
        t2 = time.perf_counter()
        ids = candidate_ids(out.tokens, out.mask)
        r = rewards(self.erm.params, jnp.asarray(feats))
        pairs, _ = select_pairs("ee_ts", r, jax.random.fold_in(key, 1), candidate_ids=ids)
        pairs = np.array(pairs, np.int32)
        texts = decode(None, out.tokens, out.mask)
        rows = np.arange(self.P)
        cand = CandidateBatch(prompts=prompts, tokens=out.tokens, mask=out.mask,
                              policy_logprobs=np.asarray(out.policy_logprobs, np.float32), ref_logprobs=ref_lp,
                              features=feats, texts=texts, version=t)
        pb = PairBatch(candidates=cand, pairs=pairs, identical=ids[rows, pairs[:, 0]] == ids[rows, pairs[:, 1]],
                       synthetic=np.zeros(self.P, bool), strategy="ee_ts")
        t3 = time.perf_counter()
        res = self.oracle.label(prompts.texts, [texts[p][a] for p, a in zip(rows, pairs[:, 0])],
                                [texts[p][b] for p, b in zip(rows, pairs[:, 1])])
        labeled = LabeledBatch(pairs=pb, prob_a=res.prob_a, label=sample_labels(res.prob_a, t), metadata=res.metadata)
        self.queries += labeled.queries
        t4 = time.perf_counter()
        fa, fb = feats[rows, pairs[:, 0]], feats[rows, pairs[:, 1]]
        self.erm, _ = erm_update(self.erm, fa, fb, labeled.label.astype(np.float32), self.queries,
                                 jax.random.fold_in(key, 2))
        batch = jax.tree.map(jnp.asarray, pairs_from_labeled(labeled, soft=False))
        self.state, metrics = train_step(self.state, batch, self.tcfg)
        jax.block_until_ready((self.state.params, self.erm.params))
        t5 = time.perf_counter()
        _, params = self.transport.get(self.transport.put(self.state.params, t + 1))
        nnx.update(self.policy, params)
        jax.block_until_ready(nnx.state(self.policy, nnx.Param))
        t6 = time.perf_counter()
        times.update(generate=t1 - t0, score=t2 - t1, select=t3 - t2, oracle=t4 - t3, learn=t5 - t4,
                     publish=t6 - t5, loss=float(metrics["loss"]))
        return times


def publish_bandwidth(params, dtype, bucket_bytes: int, repeat: int, warmup: int = 1) -> dict:
    """GB/s of published bytes: packed buckets (the loop's path), the removed per-leaf path, and
    a plain host memcpy of the same bytes. Packed = pack (fresh buckets, as LocalTransport) or
    pack into a reused staging area (as RayTransport on CPU) + unpack onto the default device.
    Each path runs warmup + repeat times (--check: 0 + 1, every path once)."""
    from duel.transport import empty_buckets, pack, unpack

    template = jax.tree.map(lambda x: jnp.zeros(x.shape, dtype), params)
    buffers, spec = pack(params, dtype, bucket_bytes)
    nbytes = spec.total_bytes
    staging = empty_buckets(spec)
    t_pack = timeit(lambda: pack(params, dtype, bucket_bytes), warmup=warmup, repeat=repeat)
    t_staged = timeit(lambda: pack(params, dtype, bucket_bytes, out=staging), warmup=warmup, repeat=repeat)
    t_unpack = timeit(lambda: jax.block_until_ready(unpack(buffers, spec)), warmup=warmup, repeat=repeat)
    t_leaf = {cast: timeit(lambda cast=cast: jax.block_until_ready(_per_leaf_publish(params, dtype, template, cast)),
                           warmup=warmup, repeat=repeat) for cast in ("jax", "numpy")}
    src = np.ones(nbytes, np.uint8)
    dst = np.empty_like(src)
    t_copy = timeit(lambda: np.copyto(dst, src), warmup=warmup, repeat=repeat)
    gbs = lambda t: nbytes / t / 1e9
    return {"bytes": nbytes, "buckets": len(buffers), "bucket_bytes": bucket_bytes,
            "packed_gbs": gbs(t_pack + t_unpack), "packed_staged_gbs": gbs(t_staged + t_unpack),
            "pack_gbs": gbs(t_pack), "pack_staged_gbs": gbs(t_staged), "unpack_gbs": gbs(t_unpack),
            "per_leaf_gbs": gbs(t_leaf["jax"]), "per_leaf_numpy_cast_gbs": gbs(t_leaf["numpy"]),
            "memcpy_gbs": gbs(t_copy), "packed_vs_per_leaf": t_leaf["jax"] / (t_pack + t_unpack),
            "packed_vs_memcpy": t_copy / (t_pack + t_unpack)}


def _per_leaf_publish(params, dtype, template, cast: str):
    """The removed per-leaf path, kept here only as the baseline: cast (on the device with jax,
    as Learner.publish did, or in NumPy as this bench used to), one host array per leaf, then one
    `jnp.asarray(leaf, template dtype)` per leaf on the generator side."""
    import ml_dtypes  # noqa: F401  (bfloat16 NumPy dtype)

    from duel.train import cast_floating

    if cast == "jax":
        host = [np.asarray(jax.device_get(x)) for x in jax.tree.leaves(cast_floating(params, dtype))]
    else:
        host = [np.asarray(jax.device_get(x)) for x in jax.tree.leaves(params)]
        host = [x.astype(dtype) if np.issubdtype(x.dtype, np.floating) else x for x in host]
    return [jnp.asarray(a, dtype=t.dtype) for a, t in zip(host, jax.tree.leaves(template))]


def layer_payload(c: ModelConfig, layers: int) -> dict:
    """float32 arrays shaped like `layers` stacked transformer layers of config c."""
    shapes = {k: (layers, *s[1:]) for k, s in param_shapes(c).items() if k.startswith("layers.")}
    key = jax.random.key(0)
    return {k: jax.random.normal(jax.random.fold_in(key, i), s, jnp.float32) for i, (k, s) in enumerate(shapes.items())}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(PRESETS), default="tiny")
    ap.add_argument("--prompts", type=int)
    ap.add_argument("--candidates", type=int)
    ap.add_argument("--prompt-len", type=int)
    ap.add_argument("--new-tokens", type=int)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], help="generator compute dtype")
    ap.add_argument("--vocab-chunk", type=int, default=None)
    ap.add_argument("--score-chunk", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    ap.add_argument("--bucket-mb", type=int, default=64)
    ap.add_argument("--publish-layers", type=int, default=1, help="Pythia-1B layers in the bandwidth payload (0: off)")
    ap.add_argument("--out", default="e2e")
    ap.add_argument("--check", action="store_true", help="this --shape's code path on a 2-layer stand-in, 2 prompts, 1 step")
    args = ap.parse_args(argv)
    if args.check:
        args.steps = 1

    reps = {"warmup": 0, "repeat": 1} if args.check else {"warmup": 1, "repeat": 5}  # check: each path once
    bw_layers = None
    if args.publish_layers:  # first, in a fresh process: after the loop the per-leaf baseline's
        # jax cast ran up to 4x slower on CPU (not investigated), which would flatter the packed path
        payload = layer_payload(FULL["pythia-1b"], args.publish_layers)
        bw_layers = publish_bandwidth(payload, jnp.bfloat16, args.bucket_mb << 20, **reps)
        del payload
    loop = Loop(args)
    t0 = time.perf_counter()
    warm = loop.step(0)  # compiles everything
    compile_s = time.perf_counter() - t0
    steps = [loop.step(t) for t in range(1, args.steps + 1)]
    med = {k: float(np.median([s[k] for s in steps])) for k in PHASES}
    total = sum(med.values())
    split = {k: med[k] / total for k in PHASES}
    pairs_per_s = loop.P / total
    pdt = jnp.dtype(args.dtype or PRESETS[args.shape][5])
    bw_policy = publish_bandwidth(loop.state.params, pdt, args.bucket_mb << 20, **reps)

    c = loop.config
    result = {
        "shape": args.shape,
        "model": {"family": c.family, "vocab": c.vocab_size, "hidden": c.hidden_size, "layers": c.num_layers},
        "prompts": loop.P, "candidates": loop.M, "prompt_len": loop.Tp, "new_tokens": loop.N,
        "compute_dtype": pdt.name, "steps": args.steps, "warmup_step_s": compile_s,
        "step_s": total, "labelled_pairs_per_s": pairs_per_s,
        "phase_s": med, "phase_fraction": split, "generation_fraction": split["generate"],
        "generation_plus_score_fraction": split["generate"] + split["score"],
        "loss": [s["loss"] for s in [warm, *steps]],
        "publish_policy": bw_policy,
        "publish_pythia_layers": None if bw_layers is None else {"layers": args.publish_layers, **bw_layers},
        "gpu": "not measured" if jax.default_backend() == "cpu" else jax.default_backend(),
        "load_average_1m": os.getloadavg()[0],  # shared CPU machines: other jobs slow every phase
    }
    path = write_result(args.out, result, check=args.check)
    rows = [{"phase": k, "seconds": med[k], "fraction": split[k]} for k in PHASES]
    rows.append({"phase": "step", "seconds": total, "fraction": 1.0})
    print(f"labelled pairs/s: {pairs_per_s:.3g}  (P={loop.P}, M={loop.M}, Tp={loop.Tp}, N={loop.N}, "
          f"{args.shape}, {jax.default_backend()})")
    for name, bw in (("policy", bw_policy), (f"{args.publish_layers} pythia-1b layers", bw_layers)):
        if bw:
            print(f"publish {name}: {bw['bytes'] / 1e6:.1f} MB in {bw['buckets']} buckets; packed "
                  f"{bw['packed_gbs']:.3g} GB/s (staged {bw['packed_staged_gbs']:.3g}), per-leaf "
                  f"{bw['per_leaf_gbs']:.3g} GB/s (NumPy cast {bw['per_leaf_numpy_cast_gbs']:.3g}), "
                  f"memcpy {bw['memcpy_gbs']:.3g} GB/s")
    print(f"wrote {path}")
    print_table(rows, title=f"e2e step ({args.shape}, {jax.default_backend()})")
    return result


if __name__ == "__main__":
    main()

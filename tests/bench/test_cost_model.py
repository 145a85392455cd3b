"""bench/cost_model.py: its HLO count (loops x trip count, slices, in-place updates), the decode
loop's KV cache updated in place (no full-cache copy per step, checked on the compiled HLO), and
the --check table (H100 target when the JAX CUDA plugin is installed, else this CPU backend)."""

from __future__ import annotations

import functools
import json
import math
import os
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.cost_model import cache_copies, hlo_cost  # noqa: E402


def test_walk_counts_every_trip_of_a_loop():
    """A scan of 5 matmuls [64, 128] x [128, 256]: 5 x 2 x 64 x 128 x 256 FLOPs (XLA's own
    HloCostAnalysis counts a while body once; the walk multiplies by the trip count)."""
    w = jnp.ones((5, 128, 256), jnp.float32)
    x = jnp.ones((64, 128), jnp.float32)

    def f(x, w):
        def body(c, wi):
            return c, jnp.tanh(x @ wi)

        return jax.lax.scan(body, 0.0, w)[1]

    text = jax.jit(f).lower(x, w).compile().as_text()
    cost = hlo_cost(text)
    assert cost["flops"] == 5 * 2 * 64 * 128 * 256
    assert cost["bytes"] >= 4 * (5 * 128 * 256 + 5 * 64 * 256)  # every weight read, every output written


def test_walk_counts_an_in_place_update_as_its_slice():
    """A loop writing one row per step into a 4 MiB carried buffer moves ~one row per step, not
    the buffer; the same loop rescaling the whole buffer each step moves it each step."""
    buf = jnp.zeros((1024, 1024), jnp.float32)

    def write_rows(buf, scale):
        def body(i, b):
            return jax.lax.dynamic_update_slice(b, jnp.full((1, 1024), scale * i, jnp.float32), (i, 0))

        return jax.lax.fori_loop(0, 8, body, buf)

    def rescale(buf, scale):
        return jax.lax.fori_loop(0, 8, lambda i, b: b * scale + 1.0, buf)

    size = 4 * 1024 * 1024
    donate = functools.partial(jax.jit, donate_argnums=0)
    rows = hlo_cost(donate(write_rows).lower(buf, 2.0).compile().as_text())
    full = hlo_cost(donate(rescale).lower(buf, 2.0).compile().as_text())
    assert rows["bytes"] < 0.1 * size, rows["bytes"]
    assert full["bytes"] >= 8 * 2 * size, full["bytes"]


_UPDATE_THEN_READ = """HloModule m

%add (a: f32[], b: f32[]) -> f32[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %s = f32[] add(%a, %b)
}

%fused_update (p0: f32[1024,1024], p1: f32[1,1024], p2: s32[]) -> f32[1024,1024] {
  %p0 = f32[1024,1024]{1,0} parameter(0)
  %p1 = f32[1,1024]{1,0} parameter(1)
  %p2 = s32[] parameter(2)
  %z = s32[] constant(0)
  ROOT %u = f32[1024,1024]{1,0} dynamic-update-slice(%p0, %p1, %p2, %z)
}

%fused_update_read (p0: f32[1024,1024], p1: f32[1,1024], p2: s32[]) -> (f32[1024,1024], f32[1024]) {
  %p0 = f32[1024,1024]{1,0} parameter(0)
  %b0 = f32[1024,1024]{1,0} bitcast(%p0)
  %p1 = f32[1,1024]{1,0} parameter(1)
  %p2 = s32[] parameter(2)
  %z = s32[] constant(0)
  %u = f32[1024,1024]{1,0} dynamic-update-slice(%b0, %p1, %p2, %z)
  %zero = f32[] constant(0)
  %r = f32[1024]{0} reduce(%u, %zero), dimensions={0}, to_apply=%add
  ROOT %t = (f32[1024,1024]{1,0}, f32[1024]{0}) tuple(%u, %r)
}

ENTRY %main (buf: f32[1024,1024], row: f32[1,1024], i: s32[]) -> (f32[1024,1024], f32[1024]) {
  %buf = f32[1024,1024]{1,0} parameter(0)
  %row = f32[1,1024]{1,0} parameter(1)
  %i = s32[] parameter(2)
  ROOT %f = (f32[1024,1024]{1,0}, f32[1024]{0}) FUSION(%buf, %row, %i), kind=kLoop, calls=%CALLED
}
"""


@pytest.mark.parametrize("called", ["fused_update", "fused_update_read"])
def test_walk_counts_reads_of_an_updated_operand(called):
    """An in-place dynamic-update-slice reads nothing of its target; when the fusion reads the
    updated array again (a layer's cache written, then attended over in the same kernel), that
    read counts: the whole 4 MiB buffer, not zero."""
    text = _UPDATE_THEN_READ.replace("CALLED", called).replace("FUSION", "fusion")
    if called == "fused_update":
        text = text.replace("(f32[1024,1024]{1,0}, f32[1024]{0}) fusion", "f32[1024,1024]{1,0} fusion")
    cost = hlo_cost(text)
    row, size, index = 4 * 1024, 4 * 1024 * 1024, 4
    if called == "fused_update":
        assert cost["bytes"] == row + index + row  # the update (and its index) read, written in place
    else:
        assert cost["bytes"] == size + row + index + row + 4 * 1024  # + the buffer read back, the reduce written


def _generate_hlo(c, batch, prompt, new_tokens, sharding=None, dtype=jnp.bfloat16, unroll=None):
    from flax import nnx

    from duel import sampling
    from duel.models import build_model

    graphdef, state = nnx.split(jax.eval_shape(lambda: build_model(c, 0, dtype)))
    state = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), state)

    def A(shape, dt):
        return jax.ShapeDtypeStruct(shape, dt, sharding=sharding)

    bounds = sampling._segments(new_tokens, min(4, max(1, new_tokens // 16)))
    return sampling._generate.lower(
        graphdef, state, A((batch, prompt), jnp.int32), A((batch, prompt), jnp.int32), A((), jax.random.key(0).dtype),
        A((batch,), jnp.bool_), A((), jnp.float32), A((), jnp.int32), A((), jnp.float32), A((8,), jnp.int32),
        A((), jnp.int32), n=1, new_tokens=new_tokens, bounds=bounds if len(bounds) > 1 else (),
        unroll_layers=sharding is not None if unroll is None else unroll).compile().as_text()  # as generate runs it there


@pytest.mark.slow
@pytest.mark.parametrize("family", ["pythia-1b", "qwen2.5-0.5b"])
@pytest.mark.parametrize("target", ["cpu-float32", "cpu-float32-layers", "h100-bfloat16"])
def test_decode_loop_updates_the_cache_in_place(family, target):
    """The compiled generate program: no kernel inside the decode loops writes a whole KV cache
    [L, B, S, K, D] (or, with the accelerator's per-layer caches, a whole layer's [B, S, K, D]) --
    only the new slot is written (in-place dynamic-update-slice). Compiled as each backend runs
    it: float32 on CPU (the CPU presets' dtype; "-layers": the accelerator's straight-line layers
    with per-layer caches, forced), bfloat16 for an H100 (deviceless, needs the JAX CUDA plugin).
    Not checked: bfloat16 on XLA:CPU, which widens the cache update to float32 and back, a
    full-cache read and write per layer per step (no preset runs it)."""
    from bench.train_step import FULL, check_shape

    sharding, dtype = None, jnp.float32
    if target.startswith("h100"):
        pytest.importorskip("jax_plugins.xla_cuda12")
        if os.environ.get("JAX_PLATFORMS") != "cpu":
            pytest.skip("the deviceless H100 compile needs JAX_PLATFORMS=cpu on a machine without a GPU")
        from bench.memory import target_sharding

        sharding, dtype = target_sharding("h100")[1], jnp.bfloat16
    c = check_shape(FULL[family])
    unroll = True if target.endswith("-layers") else None
    text = _generate_hlo(c, batch=4, prompt=8, new_tokens=32, sharding=sharding, dtype=dtype, unroll=unroll)
    assert text.count(" while(") >= 2  # the decode segments are there to inspect
    assert cache_copies(text, c.num_layers, 4, c.num_kv_heads, c.head_dim) == []


@pytest.mark.slow
@pytest.mark.parametrize("target", ["cpu-scan", "cpu-layers", "h100-layers"])
def test_decode_loop_updates_ring_and_full_caches_in_place(target):
    """Gemma 3 style: 2 sliding-window layers (window 4 < prompt 8 + 32 new tokens) and 2 global
    ones. No kernel in the decode loops writes a whole ring [2, B, 4, K, D] or global cache
    [2, B, S, K, D], nor (per layer) one layer's ring [B, 4, K, D] or cache [B, S, K, D]: under the
    layer scan on CPU (a lax.cond per layer picks its kind's attention), or with each layer's
    weights and cache as arrays of their own (the accelerator's decode step; forced on CPU, and
    as compiled for an H100, deviceless, needs the JAX CUDA plugin). (Two layers of each kind:
    XLA:CPU copies a one-layer stack [1, B, S, K, D] in the decode loop, the plain Llama cache of
    a one-layer model too. "cpu-layers" has 2 KV heads: with one, XLA:CPU reads each layer's
    updated cache through a bitcast and duplicates the update into that read, a copy per layer
    per step; the H100 program of the one-KV-head model, checked here, updates in place.)"""
    from duel.models import ModelConfig

    sharding, dtype, kv_heads = None, jnp.float32, 2 if target == "cpu-layers" else 1
    if target.startswith("h100"):
        pytest.importorskip("jax_plugins.xla_cuda12")
        if os.environ.get("JAX_PLATFORMS") != "cpu":
            pytest.skip("the deviceless H100 compile needs JAX_PLATFORMS=cpu on a machine without a GPU")
        from bench.memory import target_sharding

        sharding, dtype = target_sharding("h100")[1], jnp.bfloat16
    c = ModelConfig(family="gemma", vocab_size=64, hidden_size=32, num_layers=4, num_heads=2,
                    num_kv_heads=kv_heads, head_dim=16, intermediate_size=32, qk_norm=True,
                    hidden_act="gelu_pytorch_tanh", tie_word_embeddings=True, sliding_window=4,
                    layer_types=("sliding_attention", "full_attention") * 2)
    text = _generate_hlo(c, batch=4, prompt=8, new_tokens=32, sharding=sharding, dtype=dtype,
                         unroll=target.endswith("-layers"))
    assert text.count(" while(") >= 2
    dt = "f32" if dtype == jnp.float32 else "bf16"
    assert f"{dt}[2,4,4,{kv_heads},16]" in text  # the rings are there, window long (the prefill's stack)
    if target.endswith("-layers"):
        assert f"{dt}[4,4,{kv_heads},16]" in text  # and each local layer's own ring
    assert cache_copies(text, 2, 4, c.num_kv_heads, c.head_dim) == []


def test_cache_copy_detector_sees_a_full_cache_write():
    """The control: a decode-like loop that rescales its whole cache each step is caught."""
    shape = (2, 4, 16, 2, 8)

    def loop(cache, x, n):
        def body(s):
            t, c = s
            c = jax.lax.dynamic_update_slice(c, x, (0, 0, t, 0, 0))
            return t + 1, c * (1.0 + t.astype(c.dtype))  # a full-cache write per step

        return jax.lax.while_loop(lambda s: s[0] < n, body, (jnp.int32(0), cache))[1]

    cache = jnp.zeros(shape, jnp.float32)
    x = jnp.ones((2, 4, 1, 2, 8), jnp.float32)
    text = jax.jit(loop, donate_argnums=0).lower(cache, x, 3).compile().as_text()
    assert cache_copies(text, 2, 4, 2, 8) != []

    def good(cache, x, n):
        def body(s):
            t, c = s
            return t + 1, jax.lax.dynamic_update_slice(c, x * t.astype(c.dtype), (0, 0, t, 0, 0))

        return jax.lax.while_loop(lambda s: s[0] < n, body, (jnp.int32(0), cache))[1]

    text = jax.jit(good, donate_argnums=0).lower(cache, x, 3).compile().as_text()
    assert cache_copies(text, 2, 4, 2, 8) == []

    def per_layer(caches, x, n):  # one layer's cache [B, S, K, D] rescaled each step is caught too
        def body(s):
            t, cs = s
            return t + 1, [jax.lax.dynamic_update_slice(c, x[0], (0, t, 0, 0)) * (1.0 + t.astype(c.dtype)) for c in cs]

        return jax.lax.while_loop(lambda s: s[0] < n, body, (jnp.int32(0), caches))[1]

    caches = [jnp.zeros(shape[1:], jnp.float32) for _ in range(2)]
    text = jax.jit(per_layer, donate_argnums=0).lower(caches, x, 3).compile().as_text()
    assert cache_copies(text, 2, 4, 2, 8) != []


@pytest.mark.slow
def test_check_mode_table_is_complete(tmp_path, monkeypatch):
    """--check on tiny shapes: one row per program, each with compiled FLOPs/bytes, the ideal, the
    efficiency and the predicted time (H100 target when the CUDA plugin is installed, else CPU)."""
    from bench import cost_model

    monkeypatch.setenv("DUEL_BENCH_RESULTS", str(tmp_path))
    payload = cost_model.main(["--check", "--models", "pythia-1b", "--variants", "mb1,mb1+remat"])
    saved = json.loads((tmp_path / "cost_model.json").read_text())
    assert saved["label"] == "predicted (XLA cost model, no GPU)" and saved["check"]
    rows = payload["rows"]
    programs = [r["program"].split(" [")[0] for r in rows]
    for want in ("prefill pythia-1b", "decode step pythia-1b", "generate pythia-1b", "DPO step pythia-1b",
                 "reference forward pythia-1b", "ERM update", "select_pairs ee_ts", "publish pack pythia-1b",
                 "publish unpack pythia-1b"):
        assert want in programs, (want, programs)
    assert sum(p == "DPO step pythia-1b" for p in programs) == 2
    for r in rows:
        assert r["bytes"] > 0 and r["predicted_s"] > 0 and math.isfinite(r["efficiency"]) and r["efficiency"] > 0, r
        roofline = max(r["flops"] / 989e12, r["bytes"] / 3.35e12)
        if r["program"].startswith("generate"):  # a sum over its parts' rooflines
            assert r["predicted_s"] >= roofline * (1 - 1e-9)
        else:
            assert r["predicted_s"] == pytest.approx(roofline)
        if r["program"].startswith(("DPO", "reference", "prefill", "decode")):
            assert r["flops"] >= 0.9 * r["ideal_flops"] > 0, r  # every matmul of the ideal is in the program
        assert r["kernels"] >= 1, r  # launches counted for every program
    gen = next(r for r in rows if r["program"] == "generate pythia-1b")
    assert gen["predicted_tok_s"] > 0
    steps = [r for r in rows if r["program"] == "decode step pythia-1b"]
    assert gen["kernels"] > sum(r["steps"] * r["kernels"] for r in steps)  # + prefill, growth between segments
    if "h100" in str(payload["target"]).lower():
        # the cache is updated in place on the accelerator; XLA:CPU copies a bf16 cache per layer per
        # step (no preset samples bf16 on CPU; float32 on CPU is checked in place above)
        assert gen["full_cache_copies_in_loop"] == []
    assert np.isclose(gen["predicted_tok_s"], 2 * 32 / gen["predicted_s"])


@pytest.mark.parametrize("family", ["pythia-1b", "qwen2.5-0.5b"])
def test_unrolled_decode_layers_sample_what_the_scan_samples(family, monkeypatch):
    """generate on an accelerator unrolls the decode step's layers (the cost model's finding);
    here on CPU, forced: the same tokens and log-probs as the scanned layers."""
    from bench.train_step import FULL, check_shape
    from duel import sampling
    from duel.models import build_model

    model = build_model(check_shape(FULL[family]), seed=3)
    ids = np.random.default_rng(0).integers(1, 512, (3, 6)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[0, :2] = 0
    params = sampling.SamplingParams(temperature=1.0, max_new_tokens=12)
    assert not sampling.unroll_decode_layers(nnx_state(model))  # CPU arrays: the scan stays
    scan = sampling.generate(model, (ids, mask), jax.random.key(7), params, n=2)
    monkeypatch.setattr(sampling, "unroll_decode_layers", lambda state: True)
    unrolled = sampling.generate(model, (ids, mask), jax.random.key(7), params, n=2)
    np.testing.assert_array_equal(scan.tokens, unrolled.tokens)
    np.testing.assert_allclose(scan.policy_logprobs, unrolled.policy_logprobs, atol=1e-5)


def nnx_state(model):
    from flax import nnx

    return nnx.split(model)[1]


_NEEDED = """HloModule m

%add (a: f32[], b: f32[]) -> f32[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %s = f32[] add(%a, %b)
}

%fused (p0: f32[8,256,1024], p1: f32[4096]) -> (f32[256,128], bf16[1024]) {
  %p0 = f32[8,256,1024]{2,1,0} parameter(0)
  %zero = f32[] constant(0)
  %r = f32[256,1024]{1,0} reduce(%p0, %zero), dimensions={0}, to_apply=%add
  %s = f32[256,128]{1,0} slice(%r), slice={[0:256], [0:128]}
  %p1 = f32[4096]{0} parameter(1)
  %c = bf16[4096]{0} convert(%p1)
  %e = bf16[4096]{0} negate(%c)
  %t = bf16[1024]{0} slice(%e), slice={[1024:2048]}
  ROOT %out = (f32[256,128]{1,0}, bf16[1024]{0}) tuple(%s, %t)
}

ENTRY %main (a: f32[8,256,1024], b: f32[4096]) -> (f32[256,128], bf16[1024]) {
  %a = f32[8,256,1024]{2,1,0} parameter(0)
  %b = f32[4096]{0} parameter(1)
  ROOT %f = (f32[256,128]{1,0}, bf16[1024]{0}) fusion(%a, %b), kind=kLoop, calls=%fused
}
"""


def test_walk_counts_only_the_elements_a_fusion_needs():
    """A loop fusion computes only the output elements it writes: a reduce whose output is sliced
    reads only the rows of the slice (split-K partial sums summed for one projection's columns),
    and a cast followed by a slice reads only the slice's elements (the publish pack)."""
    cost = hlo_cost(_NEEDED)
    partials, cast = 4 * 8 * 256 * 128, 4 * 1024  # the needed eighth of p0; a quarter of p1
    assert cost["bytes"] == partials + cast + 4 * 256 * 128 + 2 * 1024


def test_walk_counts_kernels_per_trip_of_a_loop():
    """Launches: one per fusion; a while with a known trip count launches its body's every trip."""
    from bench.cost_model import HloCost

    assert hlo_cost(_NEEDED)["kernels"] == 1
    w = jnp.ones((5, 128, 256), jnp.float32)
    x = jnp.ones((64, 128), jnp.float32)

    def f(x, w):
        return jax.lax.scan(lambda c, wi: (c, jnp.tanh(x @ wi)), 0.0, w)[1]

    hc = HloCost(jax.jit(f).lower(x, w).compile().as_text())
    cost = hc.total()
    (loop,) = cost["loops"]
    per_trip = loop["kernels_per_iter"]
    assert loop["trip_count"] == 5 and per_trip >= 1  # at least the matmul
    (while_,) = [i for i in hc.comps[hc.entry].insts if i.opcode == "while"]
    cond = while_.attrs.split("condition=")[1].split(",")[0].strip().lstrip("%")
    assert per_trip == hc.comp_cost(loop["body"])[2] + hc.comp_cost(cond)[2]
    outside = sum(hc.inst_cost(i, hc.comps[hc.entry], 0)[2] for i in hc.comps[hc.entry].insts if i is not while_)
    assert cost["kernels"] == outside + 5 * per_trip


def test_layer_breakdown_splits_a_step_into_its_layers():
    """--breakdown: a loop body of 3 identical layers (matmul + tanh each) finds the layers' kernel
    count and puts every byte of the step either in a layer position or outside."""
    from bench.cost_model import layer_breakdown

    w = jnp.ones((3, 64, 64), jnp.float32)

    def f(x, w, n):
        x = jax.lax.while_loop(lambda c: c[1] < n, lambda c: (c[0] * 2.0, c[1] + 1), (x, 0))[0]

        def body(c):
            y = c[0]
            for i in range(3):
                y = jnp.tanh(y @ w[i]) + i
            return y, c[1] + 1

        return jax.lax.while_loop(lambda c: c[1] < n, body, (x, 0))[0]

    text = jax.jit(f).lower(jnp.ones((8, 64), jnp.float32), w, 2).compile().as_text()
    b = layer_breakdown(text, layers=3)
    assert b["per_layer"] >= 1 and all(r["count"] == 3 for r in b["layers"])
    assert sum(r["GB"] for r in b["layers"]) + sum(r["GB"] for r in b["outside"]) == pytest.approx(b["GB_per_step"])
    assert 3 * b["per_layer"] <= b["kernels_per_step"]

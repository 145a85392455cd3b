"""duel.transport: bucketed pack/unpack of weights; the Ray object-store Transport.

The sharded tests run this file as a script (XLA_FLAGS must be set before jax is imported):
one process with 4 forced host devices, and two processes with 2 devices each forming one JAX
group; each prints one JSON line.
"""

import hashlib
import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from duel.transport import (
    ALIGN,
    LocalTransport,
    aligned_empty,
    check_layout,
    empty_buckets,
    layout,
    pack,
    pack_reference,
    unpack,
)


def tree(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "embed": jnp.asarray(rng.normal(size=(37, 16)).astype(np.float32)),
        "layers": {"w": jnp.asarray(rng.normal(size=(2, 16, 24)).astype(np.float32) * 1e-3),
                   "norm": jnp.asarray(rng.uniform(0.5, 2, size=(2, 16)).astype(np.float32))},
        "count": jnp.asarray(np.array([3, -7, 11], np.int32)),  # non-floating: never cast
        "scalar": jnp.float32(1.0 / 3.0),
    }


def leaves_np(t):
    return [np.asarray(x) for x in jax.tree.leaves(t)]


def special_floats(n=4096, seed=0):
    """float32 edge cases for the bf16 cast: ties, denormals, inf, NaN, max, -0, random bits."""
    edge = np.array([1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, 1e-40, -1e-40, 1.1754944e-38,
                     np.inf, -np.inf, np.nan, 3.4028235e38, -0.0, 0.0], np.float32)
    bits = np.random.default_rng(seed).integers(0, 2 ** 32, n, dtype=np.uint32).view(np.float32)
    return np.concatenate([edge, bits])


def test_float32_round_trip_is_exact():
    t = tree()
    buffers, spec = pack(t, jnp.float32, bucket_bytes=1000)
    out = unpack(buffers, spec)
    assert jax.tree.structure(out) == jax.tree.structure(t)
    for a, b in zip(leaves_np(out), leaves_np(t)):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)
    assert spec.payload_bytes == sum(x.nbytes for x in leaves_np(t))
    assert spec.total_bytes == sum(b.nbytes for b in buffers) == sum(-(-x.nbytes // 64) * 64 for x in leaves_np(t))


def test_bfloat16_is_exact_round_to_nearest_even():
    t = tree(1)
    buffers, spec = pack(t, jnp.bfloat16, bucket_bytes=512)
    out = unpack(buffers, spec)
    for a, b, name in zip(leaves_np(out), leaves_np(t), spec.names):
        if name == "count":
            assert a.dtype == np.int32
            np.testing.assert_array_equal(a, b)
            continue
        assert a.dtype == jnp.bfloat16
        expect = b.astype(ml_dtypes.bfloat16)  # NumPy's round-to-nearest-even cast
        np.testing.assert_array_equal(a.view(np.uint16), expect.view(np.uint16))
        assert np.max(np.abs(a.astype(np.float32) - b) / np.maximum(np.abs(b), 1e-30)) <= 2.0 ** -8
    assert spec.payload_bytes == 2 * (37 * 16 + 2 * 16 * 24 + 2 * 16 + 1) + 4 * 3
    # unpack can cast back to float32 on the device (generators computing in float32)
    up = unpack(buffers, spec, dtype=jnp.float32)
    assert up["embed"].dtype == jnp.float32 and up["count"].dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(up["embed"]), np.asarray(out["embed"]).astype(np.float32))


def _old_publish(params, publish_dtype, template):
    """The per-leaf path this transport replaced (Learner.publish + Generator.load before it):
    cast on the device with jax (`cast_floating`), one host array per leaf, then
    `jnp.asarray(arr, dtype=template leaf dtype)` into the generator."""
    from duel.train import cast_floating

    cast = params if publish_dtype is None else cast_floating(params, publish_dtype)
    host = [np.asarray(jax.device_get(x)) for x in jax.tree.leaves(cast)]
    return [jnp.asarray(a, dtype=t.dtype) for a, t in zip(host, jax.tree.leaves(template))]


@pytest.mark.parametrize("publish_dtype", [None, "bfloat16"])
@pytest.mark.parametrize("on_device", [True, False])
def test_installed_weights_equal_the_old_per_leaf_path_bit_for_bit(publish_dtype, on_device):
    """Resume determinism: a generator gets exactly the weights the old publish path gave it."""
    from flax import nnx

    from duel.models import ModelConfig, build_model

    c = ModelConfig(family="llama", vocab_size=48, hidden_size=16, num_layers=2, num_heads=2, num_kv_heads=1,
                    head_dim=8, intermediate_size=32, max_position_embeddings=32)
    params = nnx.state(build_model(c, seed=0, dtype=jnp.float32), nnx.Param)
    # plant the cast's edge cases (ties, denormals, NaN, inf) in the embedding
    emb = np.asarray(params["embed"].value).copy().reshape(-1)
    emb[:] = special_floats(n=emb.size - 12)
    params["embed"].value = jnp.asarray(emb.reshape(params["embed"].value.shape))
    gen_dtype = jnp.float32 if publish_dtype is None else jnp.dtype(publish_dtype)
    template = nnx.state(build_model(c, seed=1, dtype=gen_dtype), nnx.Param)
    old = _old_publish(params, publish_dtype, template)
    handle = LocalTransport(publish_dtype, bucket_bytes=2048).put(params, version=3)
    assert len(handle.buffers) > 2
    check_layout(handle.spec, template)
    new = unpack(handle.buffers, handle.spec, gen_dtype, on_device=on_device)
    buffers, _ = pack(params, publish_dtype, 2048, on_device=on_device)
    for a, b in zip(buffers, pack_reference(params, publish_dtype, 2048)[0]):
        np.testing.assert_array_equal(a, b)  # either pack path: the same bytes
    leaves = jax.tree.leaves(new)
    assert len(leaves) == len(old) == 12  # embed, final_norm, lm_head and 9 stacked layer leaves
    for a, b in zip(leaves, old):
        assert a.dtype == b.dtype == gen_dtype and a.shape == b.shape
        k = np.dtype(a.dtype).itemsize
        u = {2: np.uint16, 4: np.uint32}[k]
        np.testing.assert_array_equal(np.asarray(a).view(u), np.asarray(b).view(u))  # NaN payloads too


@pytest.mark.parametrize("on_device", [True, False])
@pytest.mark.parametrize("bucket", [64, 1000, 4096, 1 << 20])
def test_buckets_are_bounded_contiguous_and_match_numpy(bucket, on_device):
    t = tree(2)
    buffers, spec = pack(t, jnp.bfloat16, bucket_bytes=bucket, on_device=on_device)
    assert spec.bucket_bytes == max(64, bucket // 64 * 64) <= bucket  # rounded down to ALIGN
    sizes = [b.nbytes for b in buffers]
    assert all(0 < s <= spec.bucket_bytes for s in sizes) and sum(sizes) == spec.total_bytes
    for i in range(len(spec.names)):  # a leaf that fits in a bucket lies in one; a larger fills whole ones
        pieces = list(spec.pieces(i))
        span = -(-spec.nbytes(i) // 64) * 64
        assert len(pieces) == 1 if span <= spec.bucket_bytes else len(pieces) >= 2
        assert all(n == spec.bucket_bytes for _, _, n in pieces[1:-1]) and sum(n for *_, n in pieces) == spec.nbytes(i)
    # buckets are cut only where a leaf does not fit: no two neighbours could have been one
    assert all(a + b > spec.bucket_bytes for a, b in zip(sizes, sizes[1:]))
    # bf16 spans: count 64, embed 1216, norm 64, w 1536, scalar 64 (2944 B)
    assert len(buffers) == {64: 46, 1000: 4, 4096: 1, 1 << 20: 1}[bucket]
    assert all(b.dtype == np.uint8 and b.ndim == 1 and b.flags.c_contiguous for b in buffers)
    assert not any(b.flags.writeable for b in buffers)  # unpack may alias them
    ref, _ = pack_reference(t, jnp.bfloat16, bucket_bytes=bucket)  # plain NumPy bytes
    for a, b in zip(buffers, ref):
        np.testing.assert_array_equal(a, b)
    for path in (True, False):  # either unpack path reads either pack path's buckets
        out = unpack(buffers, spec, dtype=jnp.float32, on_device=path)
        for a, b in zip(leaves_np(out), leaves_np(t)):
            np.testing.assert_array_equal(a, b.astype(ml_dtypes.bfloat16).astype(b.dtype))


def aligned_copy(b):
    out = aligned_empty(b.nbytes)
    out[:] = b
    out.flags.writeable = False
    return out


def _aliased(buffers, tree) -> list[bool]:
    """Which leaves are JAX arrays living inside the given host buckets (no copy)."""
    spans = [(b.ctypes.data, b.ctypes.data + b.nbytes) for b in buffers]
    return [any(lo <= x.unsafe_buffer_pointer() < hi for lo, hi in spans) for x in jax.tree.leaves(tree)]


def test_cpu_unpack_adopts_the_buckets_without_a_copy():
    t = tree(4)
    buffers, spec = pack(t, jnp.float32, bucket_bytes=1024, on_device=False)
    assert all(b.ctypes.data % ALIGN == 0 for b in buffers)
    pieces = [len(list(spec.pieces(i))) for i in range(len(spec.names))]
    # leaves in order count (12 B), embed (2368 B), layers/norm (128 B), layers/w (3072 B), scalar:
    # count opens bucket 0, embed (too big) fills it and two more, norm fits in the third, w is
    # cut again, the scalar fits behind it
    assert pieces == [1, 3, 1, 4, 1] and spec.bucket_sizes == (1024,) * 5 + (576,)
    # pack's buckets lie end to end in one allocation: every leaf is adopted, cut ones included
    assert all(a.ctypes.data + a.nbytes == b.ctypes.data for a, b in zip(buffers, buffers[1:]))
    assert _aliased(buffers, unpack(buffers, spec, on_device=False)) == [True] * 5
    # buckets apart in memory (separate allocations): only the leaves cut over buckets are copied
    apart = [aligned_copy(b) for b in buffers]
    out = unpack(apart, spec, on_device=False)
    assert _aliased(apart, out) == [n == 1 for n in pieces]
    for a, b in zip(leaves_np(out), leaves_np(t)):
        np.testing.assert_array_equal(a, b)
    # a staging area reused across versions: same bytes, refused when its sizes are wrong
    out_buffers = empty_buckets(spec)
    again, _ = pack(t, jnp.float32, bucket_bytes=1024, out=out_buffers)
    assert all(a.ctypes.data == b.ctypes.data for a, b in zip(again, out_buffers))
    for a, b in zip(again, buffers):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="`out` buckets"):
        pack(t, jnp.float32, bucket_bytes=1024, out=out_buffers[:-1])


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_large_leaves_are_cast_in_parallel_chunks_to_the_same_bytes(dtype):
    from duel import transport

    rng = np.random.default_rng(7)
    t = {"a": jnp.asarray(rng.normal(size=(3, 1_000_003)).astype(np.float32)),  # 12 MB: cut in chunks
         "b": jnp.asarray(special_floats(n=2_500_000, seed=1))}
    buffers, spec = pack(t, dtype, bucket_bytes=5 << 20, on_device=False)
    chunks = sum(-(-n // transport.COPY_CHUNK) for i in range(2) for *_, n in spec.pieces(i))
    assert spec.payload_bytes >= 2 * transport.COPY_CHUNK and chunks >= 4  # the thread-pool path
    for a, b in zip(buffers, pack_reference(t, dtype, bucket_bytes=5 << 20)[0]):
        np.testing.assert_array_equal(a, b)


def test_bool_and_int8_leaves_survive_both_paths():
    t = {"m": jnp.asarray(np.array([True, False, True])), "q": jnp.asarray(np.arange(-3, 4, dtype=np.int8)),
         "h": jnp.asarray(np.arange(5, dtype=np.float16))}
    for path in (True, False):
        buffers, spec = pack(t, jnp.bfloat16, bucket_bytes=64, on_device=path)
        out = unpack(buffers, spec, on_device=not path)
        np.testing.assert_array_equal(np.asarray(out["m"]), np.asarray(t["m"]))
        np.testing.assert_array_equal(np.asarray(out["q"]), np.asarray(t["q"]))
        assert out["h"].dtype == jnp.bfloat16 and np.asarray(out["h"]).astype(np.float32).tolist() == [0, 1, 2, 3, 4]


@pytest.mark.slow
def test_model_params_round_trip_into_the_model():
    from flax import nnx

    from duel.models import ModelConfig, build_model

    c = ModelConfig(family="gpt_neox", vocab_size=40, hidden_size=16, num_layers=2, num_heads=2, num_kv_heads=2,
                    head_dim=8, intermediate_size=32, attention_bias=True, parallel_residual=True)
    src, dst = build_model(c, seed=0), build_model(c, seed=1)
    params = nnx.state(src, nnx.Param)
    handle = LocalTransport(jnp.float32, bucket_bytes=4096).put(params, version=7, extras={"checksum": "x"})
    assert len(handle.buffers) > 1 and "layers/wqkv" in handle.spec.names and handle.extras == {"checksum": "x"}
    version, got = LocalTransport().get(handle, sharding=jax.sharding.SingleDeviceSharding(jax.devices()[0]))
    nnx.update(dst, got)
    ids = jnp.asarray(np.arange(12).reshape(2, 6) % 40)
    mask = jnp.ones_like(ids)
    assert version == 7
    np.testing.assert_array_equal(np.asarray(dst(ids, mask)), np.asarray(src(ids, mask)))


def test_wrong_buffers_and_layouts_are_refused():
    buffers, spec = pack(tree(), jnp.bfloat16, bucket_bytes=256)
    with pytest.raises(ValueError, match="bucket sizes"):
        unpack(buffers[:-1], spec)
    with pytest.raises(ValueError, match="bucket_bytes"):
        pack(tree(), bucket_bytes=0)
    check_layout(spec, tree(5))  # same names and shapes: accepted
    t = tree()
    del t["layers"]["norm"]
    with pytest.raises(ValueError, match="'layers/norm'"):
        check_layout(layout(t), tree())
    t = tree()
    t["embed"] = jnp.zeros((36, 16))
    with pytest.raises(ValueError, match=r"'embed': shape \(36, 16\), expected \(37, 16\)"):
        check_layout(layout(t), tree())
    with pytest.raises(ValueError, match=r"\['extra'\]"):
        check_layout(layout({**tree(), "extra": jnp.zeros(2)}), tree())


@pytest.mark.slow
def test_ray_object_store_transport():
    ray = pytest.importorskip("ray")
    from learner.transport_ray import RayTransport

    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        tr = RayTransport(jnp.bfloat16, bucket_bytes=1000)
        ref = tr.put(tree(3), version=5, extras={"erm": {"w": np.arange(3.0)}, "checksum": "c"})
        assert isinstance(ref, ray.ObjectRef)
        staging = tr._staging[1]
        ref2 = tr.put(tree(4), version=6)  # the staging area is reused; version 5 is unchanged
        assert tr._staging[1] is staging

        @ray.remote(num_cpus=0)
        def receive(packed):  # a top-level ObjectRef arrives resolved: what an actor method sees
            v, p = LocalTransport().get(packed)
            return (v, np.asarray(p["embed"]).astype(np.float32), len(packed.buffers), packed.extras,
                    [b.ctypes.data % 64 for b in packed.buffers], [b.flags.writeable for b in packed.buffers],
                    _aliased(packed.buffers, p), [len(list(packed.spec.pieces(i))) for i in range(len(packed.spec.names))])

        v, embed, nbuf, extras, align, writeable, aliased, pieces = ray.get(receive.remote(ref))
        assert v == 5 and tr.last_bytes == 64 + 1216 + 64 + 1536 + 64  # count, embed, norm, w, scalar
        # 1000 rounded down to 960 B: [count, embed...] [...embed, norm, w...] [...w] [scalar]
        assert nbuf == 4 and pieces == [1, 2, 1, 2, 1]
        np.testing.assert_array_equal(embed, np.asarray(tree(3)["embed"]).astype(ml_dtypes.bfloat16).astype(np.float32))
        assert extras["checksum"] == "c" and extras["erm"]["w"].tolist() == [0.0, 1.0, 2.0]
        # object-store buckets are aligned read-only views, end to end in one object: a CPU
        # generator adopts every leaf uncopied, also the ones cut over buckets
        assert align == [0] * nbuf and not any(writeable)
        assert aliased == [True] * 5
        v2, p2 = tr.get(ref)  # the driver can also get from the handle itself
        assert v2 == 5 and p2["embed"].dtype == jnp.bfloat16
        assert tr.get(ref2)[0] == 6
    finally:
        if started:
            ray.shutdown()


# ------------------------------------------------------------------------ sharded params


def _digest(buffers) -> str:
    h = hashlib.sha256()
    for b in buffers:
        h.update(np.asarray(b).tobytes())
    return h.hexdigest()


def _sharded_worker(addr: str | None, n: int, rank: int) -> dict:
    """Pack a tree whose big leaves are split over every device of every process."""
    import jax

    if addr is not None:
        from learner.distributed import init_distributed

        init_distributed(addr, n, rank, timeout_s=60)
    from jax.sharding import NamedSharding, PartitionSpec

    full = {k: np.asarray(v) for k, v in {"embed": tree(6)["embed"][:36], **tree(6)["layers"]}.items()}
    full["count"] = np.arange(8, dtype=np.int32)
    mesh = jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))

    def split(shape):  # the first axis the devices divide
        k = next(a for a, d in enumerate(shape) if d % mesh.size == 0)
        return NamedSharding(mesh, PartitionSpec(*[None] * k, "data"))

    params = {k: jax.make_array_from_callback(v.shape, split(v.shape), lambda i, v=v: v[i]) for k, v in full.items()}
    ref, _ = pack_reference(full, jnp.bfloat16, bucket_bytes=512)
    out = {"process_count": jax.process_count(), "devices": jax.device_count(),
           "addressable": all(x.is_fully_addressable for x in params.values()),
           "embed_shard": list(params["embed"].addressable_shards[0].data.shape), "reference": _digest(ref)}
    for path in (True, False):
        buffers, _ = pack(params, jnp.bfloat16, bucket_bytes=512, on_device=path)
        out["device" if path else "host"] = _digest(buffers)
    return out


def _spawn(args, env):
    return subprocess.Popen([sys.executable, __file__, *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_sharded_params_are_gathered_in_one_and_two_processes():
    from tests.helpers.hang import HANG_TIMEOUT_S
    from learner.distributed import free_port

    env = dict(os.environ, JAX_PLATFORMS="cpu")
    addr = f"127.0.0.1:{free_port('127.0.0.1')}"
    procs = [_spawn([], dict(env, XLA_FLAGS="--xla_force_host_platform_device_count=4"))]
    procs += [_spawn([addr, "2", str(r)], dict(env, XLA_FLAGS="--xla_force_host_platform_device_count=2"))
              for r in range(2)]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=HANG_TIMEOUT_S)
            assert p.returncode == 0, err[-3000:]
            outs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    one, *two = outs
    assert one["process_count"] == 1 and one["devices"] == 4 and one["addressable"]
    assert all(o["process_count"] == 2 and o["devices"] == 4 and not o["addressable"] for o in two)
    for o in outs:
        assert o["embed_shard"] == [9, 16]  # embed [36, 16] over 4 devices
        assert o["device"] == o["host"] == o["reference"] == one["reference"]  # the same bytes everywhere


if __name__ == "__main__":
    a = sys.argv[1:]
    print(json.dumps(_sharded_worker(a[0], int(a[1]), int(a[2])) if a else _sharded_worker(None, 1, 0)))


@pytest.mark.parametrize("bucket", [64, 1000, 1 << 20])
def test_per_bucket_pack_program_writes_the_reference_bytes(bucket):
    """The jitted pack builds each bucket from its own leaves' pieces (no whole-stream temporary,
    bench/cost_model.py's "publish pack" row, f32 -> bf16 by integer rounding): exactly the
    NumPy reference's bytes, the empty tree included."""
    from duel.transport import _pack_fn, layout

    for t in (tree(3), {}):
        spec = layout(t, jnp.bfloat16, bucket)
        new = _pack_fn(spec, None)(jax.tree.leaves(t))
        ref, _ = pack_reference(t, jnp.bfloat16, bucket_bytes=bucket)
        assert [b.shape for b in new] == [(n // 4,) for n in spec.bucket_sizes] and len(ref) == len(new)
        for a, b in zip(new, ref):
            np.testing.assert_array_equal(np.asarray(a).view(np.uint8), b)


@pytest.mark.parametrize("bucket", [64, 1000, 1 << 20])
@pytest.mark.parametrize("dtype", [None, "float32"])
def test_per_leaf_unpack_program_gives_the_host_paths_leaves(bucket, dtype):
    """The jitted unpack reads each leaf from its own pieces (no whole-stream temporary); its
    leaves are the host path's, bit for bit."""
    from duel.transport import _unpack_fn, _unpack_host

    buffers, spec = pack(tree(3), jnp.bfloat16, bucket_bytes=bucket, on_device=False)
    new = _unpack_fn(spec, dtype, None)([jnp.asarray(b.view(np.uint32)) for b in buffers])
    host = _unpack_host(buffers, spec, dtype)
    assert len(new) == len(host) == len(spec.names)
    for a, b in zip(new, host):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(np.asarray(a).reshape(-1).view(np.uint8), np.asarray(b).reshape(-1).view(np.uint8))

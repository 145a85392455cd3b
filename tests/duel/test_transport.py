"""duel.transport: bucketed pack/unpack of weights; the Ray object-store Transport."""

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from duel.transport import LocalTransport, pack, pack_reference, unpack


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


@pytest.mark.parametrize("on_device", [True, False])
@pytest.mark.parametrize("bucket", [64, 1000, 4096, 1 << 20])
def test_buckets_are_bounded_contiguous_and_match_numpy(bucket, on_device):
    t = tree(2)
    buffers, spec = pack(t, jnp.bfloat16, bucket_bytes=bucket, on_device=on_device)
    assert spec.bucket_bytes == max(64, bucket // 64 * 64) <= bucket  # rounded down to ALIGN
    sizes = [b.nbytes for b in buffers]
    assert all(s <= bucket for s in sizes) and all(s == spec.bucket_bytes for s in sizes[:-1])
    assert sum(sizes) == spec.total_bytes and len(buffers) == -(-spec.total_bytes // spec.bucket_bytes)
    assert all(b.dtype == np.uint8 and b.ndim == 1 and b.flags.c_contiguous for b in buffers)
    ref, _ = pack_reference(t, jnp.bfloat16, bucket_bytes=bucket)  # plain NumPy bytes
    for a, b in zip(buffers, ref):
        np.testing.assert_array_equal(a, b)
    for path in (True, False):  # either unpack path reads either pack path's buckets
        out = unpack(buffers, spec, dtype=jnp.float32, on_device=path)
        for a, b in zip(leaves_np(out), leaves_np(t)):
            np.testing.assert_array_equal(a, b.astype(ml_dtypes.bfloat16).astype(b.dtype))


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
    handle = LocalTransport(jnp.float32, bucket_bytes=4096).put(params, version=7)
    assert len(handle.buffers) > 1 and "layers/wqkv" in handle.spec.names
    version, got = LocalTransport().get(handle, sharding=jax.sharding.SingleDeviceSharding(jax.devices()[0]))
    nnx.update(dst, got)
    ids = jnp.asarray(np.arange(12).reshape(2, 6) % 40)
    mask = jnp.ones_like(ids)
    assert version == 7
    np.testing.assert_array_equal(np.asarray(dst(ids, mask)), np.asarray(src(ids, mask)))


def test_wrong_buffers_are_refused():
    buffers, spec = pack(tree(), jnp.bfloat16, bucket_bytes=256)
    with pytest.raises(ValueError, match="bucket sizes"):
        unpack(buffers[:-1], spec)
    with pytest.raises(ValueError, match="bucket_bytes"):
        pack(tree(), bucket_bytes=0)


@pytest.mark.slow
def test_ray_object_store_transport():
    ray = pytest.importorskip("ray")
    from learner.transport_ray import RayTransport

    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        tr = RayTransport(jnp.bfloat16, bucket_bytes=1000)
        ref = tr.put(tree(3), version=5)
        assert isinstance(ref, ray.ObjectRef)

        @ray.remote(num_cpus=0)
        def receive(packed):  # a top-level ObjectRef arrives resolved: what an actor method sees
            v, p = RayTransport().get(packed, dtype=jnp.float32)
            return v, np.asarray(p["embed"]), len(packed.buffers)

        v, embed, nbuf = ray.get(receive.remote(ref))
        assert v == 5 and nbuf == -(-tr.last_bytes // 960)  # 1000 rounded down to 64-byte multiples
        np.testing.assert_array_equal(embed, np.asarray(tree(3)["embed"]).astype(ml_dtypes.bfloat16).astype(np.float32))
        v2, p2 = tr.get(ref)  # the driver can also get from the handle itself
        assert v2 == 5 and p2["embed"].dtype == jnp.bfloat16
    finally:
        if started:
            ray.shutdown()

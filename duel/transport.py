"""Weight publish path: device -> contiguous host buckets (bf16) -> object store -> device.

    buffers, spec = pack(params, jnp.bfloat16, bucket_bytes=64 << 20)  # learner: a few D2H copies
    params = unpack(buffers, spec, dtype=None, sharding=device)         # generator: a few H2D copies

`pack` casts every floating leaf to `dtype`, lays all leaves end to end as one byte stream
(each leaf starting on an ALIGN-byte boundary) and cuts it into buckets of at most
`bucket_bytes`, each one contiguous uint8 host buffer: a 1B-parameter policy in bf16 is ~2 GB in
~32 buffers of 64 MB instead of hundreds of small arrays. On an accelerator this is one jitted
program (cast, bitcast to uint32 words, concatenate) and one device-to-host copy per bucket;
`unpack` is the inverse (one host-to-device copy per bucket, one jitted slice/bitcast/reshape).
On CPU, where device arrays already are host memory, NumPy casts each leaf straight into its
bucket and unpack hands NumPy views of the buckets to JAX. `pack_reference` is the plain NumPy
version both paths are tested against.
`spec` (a PackSpec: tree structure, names, shapes, dtypes, byte offsets) is small and picklable.

`Transport` is the interface the learner and generators use; `put` returns a handle that
travels to the generators, `get` turns it back into device arrays. `LocalTransport` keeps the
packed buffers in process (tests, benchmarks); the Ray object-store transport lives in
learner/transport_ray.py (duel/ never imports ray); a collective transport (NCCL broadcast from
the learner to the generators' devices) fits the same two methods later.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

DEFAULT_BUCKET_BYTES = 64 << 20
ALIGN = 64  # every leaf starts on a 64-byte boundary; buckets are multiples of it


@dataclasses.dataclass(frozen=True)
class PackSpec:
    """Layout of a packed parameter tree (hashable: it keys the jitted pack/unpack)."""

    treedef: Any
    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[str, ...]  # the original leaf dtypes
    packed_dtypes: tuple[str, ...]  # dtypes in the buffers (floating leaves cast to `dtype`)
    offsets: tuple[int, ...]  # byte offset of each leaf in the stream (multiples of ALIGN)
    bucket_bytes: int  # a multiple of ALIGN
    total_bytes: int  # stream length, zero padding included (a multiple of ALIGN)

    @property
    def bucket_sizes(self) -> tuple[int, ...]:
        b, n = self.bucket_bytes, self.total_bytes
        return tuple(min(b, n - lo) for lo in range(0, n, b)) or (0,)

    @property
    def payload_bytes(self) -> int:
        """Bytes of the leaves themselves (padding excluded): what bandwidth is counted on."""
        return sum(self.nbytes(i) for i in range(len(self.names)))

    def nbytes(self, i: int) -> int:
        return int(np.prod(self.shapes[i], dtype=np.int64)) * jnp.dtype(self.packed_dtypes[i]).itemsize


@dataclasses.dataclass
class Packed:
    """What crosses process boundaries: the version, host buckets and their layout."""

    version: int
    buffers: list[np.ndarray]
    spec: PackSpec

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self.buffers)


class Transport(Protocol):
    """Publish weights of one version; receive them on another device or process."""

    def put(self, params, version: int) -> Any:
        """Learner side: -> a handle (picklable) that `get` accepts anywhere."""

    def get(self, handle, dtype=None, sharding=None) -> tuple[int, Any]:
        """Generator side: -> (version, params as device arrays)."""


def layout(params, dtype=None, bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> PackSpec:
    """The PackSpec of `params` packed in `dtype` (None keeps every leaf's dtype).

    bucket_bytes is rounded down to a multiple of ALIGN (at least ALIGN)."""
    if bucket_bytes <= 0:
        raise ValueError(f"bucket_bytes must be positive, got {bucket_bytes}")
    leaves_with_path, treedef = jax.tree_util.tree_flatten_with_path(params)
    names, shapes, dtypes, packed, offsets = [], [], [], [], []
    offset = 0
    for path, leaf in leaves_with_path:
        src = jnp.dtype(leaf.dtype)
        dst = jnp.dtype(dtype) if dtype is not None and jnp.issubdtype(src, jnp.floating) else src
        names.append(_name(path))
        shapes.append(tuple(int(d) for d in np.shape(leaf)))
        dtypes.append(src.name)
        packed.append(dst.name)
        offsets.append(offset)
        offset += _aligned(int(np.prod(np.shape(leaf), dtype=np.int64)) * dst.itemsize)
    return PackSpec(treedef, tuple(names), tuple(shapes), tuple(dtypes), tuple(packed), tuple(offsets),
                    max(ALIGN, int(bucket_bytes) // ALIGN * ALIGN), offset)


def pack(params, dtype=jnp.bfloat16, bucket_bytes: int = DEFAULT_BUCKET_BYTES, *,
         on_device: bool | None = None) -> tuple[list[np.ndarray], PackSpec]:
    """params (device arrays, any pytree) -> (host uint8 buckets, spec).

    on_device (default: unless the leaves live on CPU): cast and lay out the stream in one
    jitted program on the accelerator, then one device-to-host copy per bucket. On CPU the
    arrays already are host memory, so NumPy casts each leaf straight into its bucket instead.
    """
    spec = layout(params, dtype, bucket_bytes)
    leaves = jax.tree.leaves(params)
    if on_device is None:
        on_device = not _on_cpu(leaves)
    if not on_device:
        return _pack_host(leaves, spec), spec
    buckets = _pack_fn(spec)(leaves)
    return [_to_host(b).view(np.uint8) for b in buckets], spec


def unpack(buffers, spec: PackSpec, dtype=None, sharding=None, *, on_device: bool | None = None):
    """Host buckets -> the params tree on the device(s): leaves in their packed dtype, or all
    floating leaves cast to `dtype`. `sharding` (one jax.sharding.Sharding, e.g. a device's
    SingleDeviceSharding or a replicated NamedSharding) places the result; default device if None.

    on_device (default: unless the target is a CPU): copy the buckets to the device and cut
    them into leaves there in one jitted program; on CPU, NumPy views of the buckets are handed
    to JAX leaf by leaf.
    """
    buffers = [np.asarray(b) for b in buffers]
    if [b.nbytes for b in buffers] != list(spec.bucket_sizes):
        raise ValueError(f"packed weights: bucket sizes {[b.nbytes for b in buffers]} do not "
                         f"match the spec {list(spec.bucket_sizes)}")
    if sharding is not None and not isinstance(sharding, jax.sharding.Sharding):
        raise TypeError("unpack: sharding must be one jax.sharding.Sharding (apply a per-leaf layout afterwards)")
    target = sharding.device_set if sharding is not None else {jax.devices()[0]}
    if on_device is None:
        on_device = any(d.platform != "cpu" for d in target)
    dtype = None if dtype is None else jnp.dtype(dtype).name
    if not on_device:
        leaves = [jax.device_put(x, sharding) for x in _unpack_host(buffers, spec, dtype)]
        return jax.tree_util.tree_unflatten(spec.treedef, leaves)
    in_sharding = sharding
    if isinstance(sharding, jax.sharding.NamedSharding):  # the buckets go replicated over the mesh
        in_sharding = jax.sharding.NamedSharding(sharding.mesh, jax.sharding.PartitionSpec())
    words = [jax.device_put(b.view(np.uint32), in_sharding) for b in buffers]
    leaves = _unpack_fn(spec, dtype, sharding)(words)
    return jax.tree_util.tree_unflatten(spec.treedef, leaves)


def pack_reference(params, dtype=jnp.bfloat16, bucket_bytes: int = DEFAULT_BUCKET_BYTES):
    """Plain NumPy version of `pack` (same bytes): the fast paths are tested against it."""
    spec = layout(params, dtype, bucket_bytes)
    stream = np.zeros(spec.total_bytes, np.uint8)
    for i, (x, d) in enumerate(zip(jax.tree.leaves(params), spec.packed_dtypes)):
        raw = np.asarray(jax.device_get(x)).astype(jnp.dtype(d)).reshape(-1).view(np.uint8)
        stream[spec.offsets[i]:spec.offsets[i] + raw.size] = raw
    return [stream[lo:lo + n].copy() for lo, n in zip(_starts(spec), spec.bucket_sizes)], spec


class LocalTransport:
    """In-process Transport: the handle is the Packed object itself."""

    def __init__(self, dtype=jnp.bfloat16, bucket_bytes: int = DEFAULT_BUCKET_BYTES):
        self.dtype, self.bucket_bytes = dtype, bucket_bytes

    def put(self, params, version: int) -> Packed:
        buffers, spec = pack(params, self.dtype, self.bucket_bytes)
        return Packed(int(version), buffers, spec)

    def get(self, handle: Packed, dtype=None, sharding=None):
        return handle.version, unpack(handle.buffers, handle.spec, dtype, sharding)


# ------------------------------------------------------------------------------ the two paths


def _pack_host(leaves, spec: PackSpec) -> list[np.ndarray]:
    """NumPy: cast each leaf into its place in preallocated buckets (split at bucket ends)."""
    buckets = [np.zeros(n, np.uint8) for n in spec.bucket_sizes]
    for i, (x, d) in enumerate(zip(leaves, spec.packed_dtypes)):
        x, d = np.asarray(jax.device_get(x)).reshape(-1), jnp.dtype(d)
        b, off = divmod(spec.offsets[i], spec.bucket_bytes)
        if off + spec.nbytes(i) <= spec.bucket_bytes:  # cast straight into the bucket: one pass
            np.copyto(buckets[b][off:off + spec.nbytes(i)].view(d), x, casting="unsafe")
        else:
            _scatter(buckets, spec.bucket_bytes, spec.offsets[i], x.astype(d, copy=False).view(np.uint8))
    return buckets


def _scatter(buckets, bucket_bytes: int, lo: int, raw: np.ndarray) -> None:
    done = 0
    while done < raw.size:
        b, off = divmod(lo + done, bucket_bytes)
        n = min(raw.size - done, bucket_bytes - off)
        buckets[b][off:off + n] = raw[done:done + n]
        done += n


def _unpack_host(buffers, spec: PackSpec, dtype):
    """NumPy views of the buckets per leaf (a copy only for a leaf split across buckets)."""
    out = []
    for i, (shape, d) in enumerate(zip(spec.shapes, spec.packed_dtypes)):
        lo, n = spec.offsets[i], spec.nbytes(i)
        b, off = divmod(lo, spec.bucket_bytes)
        if off + n <= spec.bucket_bytes:
            raw = buffers[b][off:off + n]
        else:
            pieces, done = [], 0
            while done < n:
                b, off = divmod(lo + done, spec.bucket_bytes)
                k = min(n - done, spec.bucket_bytes - off)
                pieces.append(buffers[b][off:off + k])
                done += k
            raw = np.concatenate(pieces)
        x = raw.view(jnp.dtype(d)).reshape(shape)
        if dtype is not None and jnp.issubdtype(x.dtype, jnp.floating):
            x = x.astype(jnp.dtype(dtype))
        out.append(x)
    return out


@functools.lru_cache(maxsize=32)
def _pack_fn(spec: PackSpec):
    """Jitted: leaves -> uint32 word buckets (cast, bitcast, zero-pad to ALIGN, concatenate, cut)."""

    def run(leaves):
        parts = []
        for i, (x, d) in enumerate(zip(leaves, spec.packed_dtypes)):
            w = _to_words(x.astype(d))
            end = spec.offsets[i + 1] if i + 1 < len(leaves) else spec.total_bytes
            parts.append(jnp.pad(w, (0, (end - spec.offsets[i]) // 4 - w.shape[0])))
        stream = jnp.concatenate(parts) if parts else jnp.zeros((0,), jnp.uint32)
        return [stream[lo // 4:(lo + n) // 4] for lo, n in zip(_starts(spec), spec.bucket_sizes)]

    return jax.jit(run)


@functools.lru_cache(maxsize=32)
def _unpack_fn(spec: PackSpec, dtype: str | None, sharding):
    """Jitted: uint32 word buckets -> leaves (concatenate, slice, bitcast, reshape, cast)."""

    def run(buckets):
        stream = jnp.concatenate(buckets) if len(buckets) > 1 else buckets[0]
        out = []
        for i, (shape, d) in enumerate(zip(spec.shapes, spec.packed_dtypes)):
            lo = spec.offsets[i] // 4
            x = _from_words(stream[lo:lo + -(-spec.nbytes(i) // 4)], jnp.dtype(d), shape)
            if dtype is not None and jnp.issubdtype(x.dtype, jnp.floating):
                x = x.astype(dtype)
            out.append(x)
        return out

    return jax.jit(run) if sharding is None else jax.jit(run, out_shardings=sharding)


def _to_words(x):
    """Any array -> its bytes as uint32 words (little-endian), zero-padded to a whole word."""
    if x.dtype == jnp.bool_:
        x = x.astype(jnp.uint8)
    k = x.dtype.itemsize
    x = x.reshape(-1)
    if k < 4:
        x = jnp.pad(x, (0, -x.shape[0] % (4 // k))).reshape(-1, 4 // k)
    return jax.lax.bitcast_convert_type(x, jnp.uint32).reshape(-1)


def _from_words(w, dtype, shape):
    size = int(np.prod(shape, dtype=np.int64))
    target = jnp.uint8 if dtype == jnp.bool_ else dtype
    k = jnp.dtype(target).itemsize
    if k == 4:
        x = jax.lax.bitcast_convert_type(w, target)
    elif k < 4:
        x = jax.lax.bitcast_convert_type(w, target).reshape(-1)[:size]
    else:
        x = jax.lax.bitcast_convert_type(w.reshape(-1, k // 4), target)
    x = x.reshape(shape)
    return x.astype(jnp.bool_) if dtype == jnp.bool_ else x


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _starts(spec: PackSpec):
    return range(0, max(spec.total_bytes, 1), spec.bucket_bytes)


def _on_cpu(leaves) -> bool:
    devs = set()
    for x in leaves:
        devs |= set(x.devices()) if isinstance(x, jax.Array) else {None}
    return all(d is None or d.platform == "cpu" for d in devs)


def _to_host(x) -> np.ndarray:
    if not x.is_fully_addressable:  # sharded across processes: every process gathers the bucket
        from jax.experimental import multihost_utils

        x = multihost_utils.process_allgather(x, tiled=True)
    return np.asarray(jax.device_get(x))


def _name(path) -> str:
    parts = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    if len(parts) > 1 and parts[-1] == "value":  # nnx.Variable's value slot
        parts.pop()
    return "/".join(parts)

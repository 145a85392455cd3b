"""Weight publish path: device -> contiguous host buckets (bf16) -> object store -> device.

    buffers, spec = pack(params, jnp.bfloat16, bucket_bytes=64 << 20)  # learner: a few D2H copies
    params = unpack(buffers, spec, dtype=None, sharding=device)         # generator: a few H2D copies

`pack` casts every floating leaf to `dtype` (round to nearest even, the rule of `x.astype`),
lays all leaves end to end as one byte stream (each leaf starting on an ALIGN-byte boundary)
and cuts it into buckets of at most `bucket_bytes`, each one contiguous, ALIGN-aligned uint8
host buffer (a leaf that fits in a bucket is never cut; a larger one fills whole buckets): a
1B-parameter policy in bf16 is ~2 GB in ~32 buffers of 64 MB instead of hundreds of arrays.
On an accelerator this is one jitted program (per bucket: slice its leaves' pieces, cast, bitcast to
uint32 words, concatenate; each leaf read once, each bucket written once) and one device-to-host
copy per bucket (all started before the first is waited on); `unpack`
is the inverse (one host-to-device copy per bucket, one jitted slice/bitcast/reshape). On CPU,
where device arrays already are host memory, NumPy casts each leaf straight into its bucket
(one pass, no temporary, on every core), and `unpack` hands JAX aligned views of the buckets,
which the CPU client adopts without a copy (only a leaf cut over buckets is copied). Params sharded over several devices
are gathered: `device_get` in one process; across processes (a multi-process learner) the
jitted program's output is replicated over the mesh, or the host path uses `process_allgather`.
`pack_reference` is the plain NumPy version both paths are tested against.
`spec` (a PackSpec: tree structure, names, shapes, dtypes, byte offsets) is small and picklable.

`Transport` is the interface the learner and generators use: `put(params, version, extras)`
returns a handle that travels to the generators; what a generator receives has `.version` and
`.extras` (small host data published with the weights: the ERM params, a checksum) and
`get(handle)` turns it into device arrays. `LocalTransport` keeps the packed buffers in process;
it is also how a generator receives from the object store, since Ray resolves the learner's
ObjectRef into the `Packed` itself. The object-store transport lives in
learner/transport_ray.py (duel/ never imports ray). A collective transport (an NCCL broadcast
from the learner's devices into the generators', skipping the host) implements the same two
methods: `put` broadcasts and returns a small handle (version, extras, spec) that still travels
through the object store, `get` posts the matching receive.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import math
import os
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

DEFAULT_BUCKET_BYTES = 64 << 20
COPY_CHUNK = 4 << 20  # bytes per cast-copy task of the CPU path (a multiple of ALIGN)
ALIGN = 64  # every leaf starts on a 64-byte boundary; buckets are multiples of it and start on one


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
    starts: tuple[int, ...]  # stream offset where each bucket begins (starts[0] == 0)

    @property
    def bucket_sizes(self) -> tuple[int, ...]:
        return tuple(hi - lo for lo, hi in zip(self.starts, (*self.starts[1:], self.total_bytes)))

    @property
    def payload_bytes(self) -> int:
        """Bytes of the leaves themselves (padding excluded): what bandwidth is counted on."""
        return sum(self.nbytes(i) for i in range(len(self.names)))

    def nbytes(self, i: int) -> int:
        return math.prod(self.shapes[i]) * jnp.dtype(self.packed_dtypes[i]).itemsize

    def pieces(self, i: int):
        """(bucket, byte offset in it, bytes) of leaf i: one piece unless it crosses bucket ends."""
        lo, end = self.offsets[i], self.offsets[i] + self.nbytes(i)
        b = bisect.bisect_right(self.starts, lo) - 1
        while lo < end:
            off = lo - self.starts[b]
            hi = self.starts[b + 1] if b + 1 < len(self.starts) else self.total_bytes
            n = min(end, hi) - lo
            yield b, off, n
            lo, b = lo + n, b + 1

    def bucket_of(self, offset: int) -> tuple[int, int]:
        """(bucket, offset in it) of a stream offset."""
        b = bisect.bisect_right(self.starts, offset) - 1
        return b, offset - self.starts[b]


@dataclasses.dataclass
class Packed:
    """What crosses process boundaries: the version, host buckets, their layout, small extras."""

    version: int
    buffers: list[np.ndarray]
    spec: PackSpec
    extras: dict = dataclasses.field(default_factory=dict)  # e.g. {"erm": params, "checksum": str}

    @property
    def nbytes(self) -> int:
        return sum(b.nbytes for b in self.buffers)


class Transport(Protocol):
    """Publish weights of one version; receive them on another device or process."""

    def put(self, params, version: int, extras: dict | None = None) -> Any:
        """Learner side: -> a handle (picklable) that `get` accepts anywhere."""

    def get(self, handle, dtype=None, sharding=None) -> tuple[int, Any]:
        """Generator side: -> (version, params as device arrays)."""


def layout(params, dtype=None, bucket_bytes: int = DEFAULT_BUCKET_BYTES) -> PackSpec:
    """The PackSpec of `params` packed in `dtype` (None keeps every leaf's dtype).

    bucket_bytes is rounded down to a multiple of ALIGN (at least ALIGN). Buckets are cut in
    leaf order: a leaf that fits in one bucket never spans two (it opens a new bucket when the
    current one is too full: so the CPU unpack adopts it without a copy); a larger leaf fills
    whole buckets. Cached by tree structure, shapes and dtypes (every version has the same)."""
    if bucket_bytes <= 0:
        raise ValueError(f"bucket_bytes must be positive, got {bucket_bytes}")
    leaves, treedef = jax.tree_util.tree_flatten(params)
    key = (treedef, tuple((np.shape(x), np.dtype(x.dtype).name) for x in leaves),
           None if dtype is None else jnp.dtype(dtype).name, int(bucket_bytes))
    spec = _LAYOUTS.get(key)
    if spec is None:
        if len(_LAYOUTS) >= 64:
            _LAYOUTS.clear()
        spec = _LAYOUTS[key] = _layout(params, dtype, bucket_bytes)
    return spec


_LAYOUTS: dict = {}


def _layout(params, dtype, bucket_bytes: int) -> PackSpec:
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
        offset += _aligned(math.prod(np.shape(leaf)) * dst.itemsize)
    bucket = max(ALIGN, int(bucket_bytes) // ALIGN * ALIGN)
    starts = [0]
    for o, n in zip(offsets, (*offsets[1:], offset)):  # n: the leaf's aligned span
        n -= o
        if n <= bucket and o > starts[-1] and o + n > starts[-1] + bucket:
            starts.append(o)
        while o + n > starts[-1] + bucket:
            starts.append(starts[-1] + bucket)
    return PackSpec(treedef, tuple(names), tuple(shapes), tuple(dtypes), tuple(packed), tuple(offsets),
                    bucket, offset, tuple(starts))


def check_layout(spec: PackSpec, template) -> None:
    """Refuse packed weights whose leaves differ from `template`'s (names, shapes) by name."""
    want = layout(template)
    got = dict(zip(spec.names, spec.shapes))
    for name, shape in zip(want.names, want.shapes):
        if name not in got:
            raise ValueError(f"published weights lack {name!r} ({len(spec.names)} leaves published)")
        if got[name] != shape:
            raise ValueError(f"published weights {name!r}: shape {got[name]}, expected {shape}")
    extra = sorted(set(spec.names) - set(want.names))
    if extra or spec.names != want.names:
        raise ValueError(f"published weights: leaves {extra or 'in another order'} do not match the model")


def pack(params, dtype=jnp.bfloat16, bucket_bytes: int = DEFAULT_BUCKET_BYTES, *,
         on_device: bool | None = None, out: list[np.ndarray] | None = None) -> tuple[list[np.ndarray], PackSpec]:
    """params (device arrays, any pytree) -> (read-only host uint8 buckets, spec).

    on_device (default: unless the leaves live on CPU): cast and lay out the stream in one
    jitted program on the accelerator, then one device-to-host copy per bucket. On CPU the
    arrays already are host memory, so NumPy casts each leaf straight into its bucket instead.
    out: host buckets to fill (CPU path; from `empty_buckets(spec)`), e.g. a staging area
    reused across versions when the caller copies the result away (ray.put does).
    """
    spec = layout(params, dtype, bucket_bytes)
    leaves = jax.tree.leaves(params)
    if on_device is None:
        on_device = not packs_on_host(leaves)
    if on_device:
        buckets = _pack_fn(spec, _replicated(leaves))(leaves)
        for b in buckets:  # start every D2H copy before waiting on the first
            if b.is_fully_addressable:
                b.copy_to_host_async()
        buffers = [_host_array(b).view(np.uint8) for b in buckets]
    else:
        buffers = _pack_host(leaves, spec, out)
    views = []
    for b in buffers:  # unpack on CPU aliases the buckets: nobody may write them afterwards
        v = b[:]
        v.flags.writeable = False
        views.append(v)
    return views, spec


def unpack(buffers, spec: PackSpec, dtype=None, sharding=None, *, on_device: bool | None = None):
    """Host buckets -> the params tree on the device(s): leaves in their packed dtype, or all
    floating leaves cast to `dtype`. `sharding` (one jax.sharding.Sharding, e.g. a device's
    SingleDeviceSharding or a replicated NamedSharding) places the result; default device if None.

    on_device (default: unless the target is a CPU): copy the buckets to the device and cut
    them into leaves there in one jitted program; on CPU, aligned views of the buckets are
    handed to JAX leaf by leaf (adopted without a copy; a leaf split across buckets or cast to
    `dtype` is copied once). The result may alias `buffers`: keep them unchanged.
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
        leaves = jax.device_put(_unpack_host(buffers, spec, dtype), sharding)  # one batched call
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
        with np.errstate(invalid="ignore", over="ignore"):
            raw = np.asarray(jax.device_get(x)).astype(jnp.dtype(d)).reshape(-1).view(np.uint8)
        stream[spec.offsets[i]:spec.offsets[i] + raw.size] = raw
    return [stream[lo:lo + n].copy() for lo, n in zip(spec.starts, spec.bucket_sizes)], spec


def empty_buckets(spec: PackSpec) -> list[np.ndarray]:
    """Uninitialised ALIGN-aligned host buckets for `spec` (pack fills every byte), cut from one
    allocation: they lie end to end, so a leaf cut over buckets is read back without a copy."""
    stream = aligned_empty(spec.total_bytes)
    return [stream[lo:lo + n] for lo, n in zip(spec.starts, spec.bucket_sizes)]


def aligned_empty(nbytes: int) -> np.ndarray:
    """uint8[nbytes] starting on an ALIGN-byte address (NumPy's own start 16 bytes past one)."""
    raw = np.empty(nbytes + ALIGN, np.uint8)
    off = -raw.ctypes.data % ALIGN
    return raw[off:off + nbytes]


def host(tree):
    """Pytree of (possibly sharded, possibly multi-process) arrays -> NumPy arrays, gathered."""
    return jax.tree.map(_host_array, tree)


def packs_on_host(leaves) -> bool:
    """Whether `pack` takes the NumPy path for these leaves (all on CPU or already NumPy)."""
    devs = set()
    for x in leaves:
        devs |= set(x.devices()) if isinstance(x, jax.Array) else {None}
    return all(d is None or d.platform == "cpu" for d in devs)


class LocalTransport:
    """In-process Transport: the handle is the Packed object itself (also what a generator gets
    from the object store: Ray resolves the ObjectRef to the Packed)."""

    def __init__(self, dtype=jnp.bfloat16, bucket_bytes: int = DEFAULT_BUCKET_BYTES):
        self.dtype, self.bucket_bytes = dtype, bucket_bytes

    def put(self, params, version: int, extras: dict | None = None) -> Packed:
        buffers, spec = pack(params, self.dtype, self.bucket_bytes)
        return Packed(int(version), buffers, spec, dict(extras or {}))

    def get(self, handle: Packed, dtype=None, sharding=None):
        return handle.version, unpack(handle.buffers, handle.spec, dtype, sharding)


# ------------------------------------------------------------------------------ the two paths


def _pack_host(leaves, spec: PackSpec, out=None) -> list[np.ndarray]:
    """NumPy: cast each leaf piece by piece straight into its place in the buckets."""
    if out is None:
        buckets = empty_buckets(spec)
    else:
        buckets = list(out)
        if [b.nbytes for b in buckets] != list(spec.bucket_sizes) or any(b.dtype != np.uint8 for b in buckets):
            raise ValueError(f"pack: `out` buckets {[b.nbytes for b in buckets]} do not match the spec "
                             f"{list(spec.bucket_sizes)} (uint8)")
    copies = []  # (destination view, source slice): pieces start on ALIGN, so on whole elements
    for i, (x, d) in enumerate(zip(leaves, spec.packed_dtypes)):
        x, d = _host_array(x).reshape(-1), jnp.dtype(d)
        done = 0  # bytes of leaf i placed
        for b, off, n in spec.pieces(i):
            for lo in range(0, n, COPY_CHUNK):  # chunks: the cast runs on every core
                k = min(COPY_CHUNK, n - lo)
                copies.append((buckets[b][off + lo:off + lo + k].view(d),
                               x[(done + lo) // d.itemsize:(done + lo + k) // d.itemsize]))
            done += n
        end = spec.offsets[i + 1] if i + 1 < len(leaves) else spec.total_bytes
        pad = spec.offsets[i] + spec.nbytes(i)  # zero the alignment gap (inside one bucket)
        if end > pad:
            b, off = spec.bucket_of(pad)
            buckets[b][off:off + end - pad] = 0
    _run_copies(copies)
    return buckets


def _copy(dst: np.ndarray, src: np.ndarray) -> None:
    with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf cast silently, as in jax
        np.copyto(dst, src, casting="unsafe")


def _run_copies(copies) -> None:
    """Cast-copies in a thread pool (NumPy releases the GIL: ~2x on 2 cores); small ones inline."""
    if sum(dst.nbytes for dst, _ in copies) < 2 * COPY_CHUNK or (os.cpu_count() or 1) == 1:
        for dst, src in copies:
            _copy(dst, src)
        return
    list(_pool().map(lambda c: _copy(*c), copies))


@functools.lru_cache(maxsize=1)
def _pool():
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="duel-pack")


def _unpack_host(buffers, spec: PackSpec, dtype):
    """Per-leaf aligned views of the buckets; a copy only for a leaf cut over buckets that do not
    lie end to end in memory, or cast to `dtype`."""
    out = []
    for i, (shape, d) in enumerate(zip(spec.shapes, spec.packed_dtypes)):
        pieces = list(spec.pieces(i))
        if len(pieces) == 1:
            b, off, n = pieces[0]
            raw = buffers[b][off:off + n]
        else:
            raw = _span(buffers, pieces)
            if raw is None:
                raw, done = aligned_empty(spec.nbytes(i)), 0
                for b, off, n in pieces:
                    raw[done:done + n] = buffers[b][off:off + n]
                    done += n
        x = raw.view(jnp.dtype(d)).reshape(shape)
        if dtype is not None and jnp.issubdtype(x.dtype, jnp.floating) and x.dtype != jnp.dtype(dtype):
            x = x.astype(jnp.dtype(dtype))
        out.append(x)
    return out


class _Span:
    """Read-only bytes over buckets that lie end to end in memory (one allocation on the learner,
    one object in Ray's store); holds every bucket, so what owns their memory stays alive."""

    def __init__(self, buckets, address: int, nbytes: int):
        self.buckets = buckets
        self.__array_interface__ = {"shape": (nbytes,), "typestr": "|u1", "data": (address, True), "version": 3}


def _span(buffers, pieces) -> np.ndarray | None:
    """One view over a leaf's pieces when their buckets are contiguous in memory, else None."""
    ends = [buffers[b].ctypes.data + off + n for b, off, n in pieces[:-1]]
    if any(e != buffers[b].ctypes.data + off for e, (b, off, _) in zip(ends, pieces[1:])):
        return None
    b, off, _ = pieces[0]
    return np.asarray(_Span([buffers[p[0]] for p in pieces], buffers[b].ctypes.data + off,
                            sum(n for *_, n in pieces)))


@functools.lru_cache(maxsize=32)
def _pack_fn(spec: PackSpec, out_sharding):
    """Jitted: leaves -> uint32 word buckets. Each bucket is one concatenation of the pieces of
    the leaves that lie in it, each piece sliced from its leaf *before* the cast (then bitcast to
    words, zero-padded to the end of the leaf's ALIGN slot). XLA fuses each bucket into one
    kernel that reads only its pieces: every leaf byte is read once and every bucket byte written
    once, the ideal traffic (the previous program, which concatenated one whole stream and then
    cut it, moved 1.94x that for Pythia-1B: bench/cost_model.py's "publish pack" row).

    out_sharding: replicated over the leaves' mesh when they are sharded (the gather runs in
    this program, e.g. an all-gather over NCCL; every process then copies its local replica)."""
    ends = (*spec.offsets[1:], spec.total_bytes)

    def run(leaves):
        flat = [x.reshape(-1) for x in leaves]
        out = []
        for lo, n in zip(spec.starts, spec.bucket_sizes):
            parts = []
            for i in range(max(0, bisect.bisect_right(spec.offsets, lo) - 1), len(flat)):
                off, end = spec.offsets[i], ends[i]
                if off >= lo + n:
                    break
                a, b = max(lo, off), min(lo + n, end)
                if a >= b:
                    continue
                k, nb = jnp.dtype(spec.packed_dtypes[i]).itemsize, spec.nbytes(i)
                w = jnp.zeros((0,), jnp.uint32)
                if a - off < nb:  # ALIGN-aligned piece boundaries: whole elements, whole words
                    piece = flat[i][(a - off) // k:min(b - off, nb) // k]
                    w = (_bf16_words(piece) if (spec.dtypes[i], spec.packed_dtypes[i]) == ("float32", "bfloat16")
                         else _to_words(piece.astype(spec.packed_dtypes[i])))
                parts.append(jnp.pad(w, (0, (b - a) // 4 - w.shape[0])))
            out.append(parts[0] if len(parts) == 1 else jnp.concatenate(parts) if parts
                       else jnp.zeros((n // 4,), jnp.uint32))
        return out

    return jax.jit(run) if out_sharding is None else jax.jit(run, out_shardings=out_sharding)


@functools.lru_cache(maxsize=32)
def _unpack_fn(spec: PackSpec, dtype: str | None, sharding):
    """Jitted: uint32 word buckets -> leaves, each leaf from its own pieces (slice the buckets it
    lies in, concatenate, bitcast, reshape, cast): each bucket byte read once, each leaf written
    once (the previous program concatenated every bucket into one stream first: bench/cost_model.py)."""

    def run(buckets):
        out = []
        for i, (shape, d) in enumerate(zip(spec.shapes, spec.packed_dtypes)):
            parts = [buckets[b][off // 4:-(-(off + n) // 4)] for b, off, n in spec.pieces(i)]
            w = parts[0] if len(parts) == 1 else jnp.concatenate(parts) if parts else jnp.zeros((0,), jnp.uint32)
            x = _from_words(w, jnp.dtype(d), shape)
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


def _bf16_words(x):
    """float32 -> its bfloat16 values as uint32 words (two per word, the first in the low half),
    the same bytes as `_to_words(x.astype(bfloat16))`: round to nearest even, NaN -> the quiet NaN
    0x7FC0 / 0xFFC0 of its sign (ml_dtypes' and XLA:CPU's rule). Integer arithmetic on words of
    the input's own width, so XLA fuses the cast into the kernel that writes the bucket (a
    convert to bf16 followed by a bitcast to wider words is a kernel of its own on XLA:GPU, which
    writes and reads every leaf once more)."""
    x = x.reshape(-1)
    x = jnp.pad(x, (0, x.shape[0] % 2))
    u = jax.lax.bitcast_convert_type(x, jnp.uint32)
    h = (u + jnp.uint32(0x7FFF) + ((u >> 16) & 1)) >> 16  # wraps only for NaN bit patterns
    nan = (u & jnp.uint32(0x7FFFFFFF)) > jnp.uint32(0x7F800000)
    h = jnp.where(nan, jnp.where(u >> 31 == 1, jnp.uint32(0xFFC0), jnp.uint32(0x7FC0)), h).reshape(-1, 2)
    return h[:, 0] | (h[:, 1] << 16)


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


def _replicated(leaves):
    """A replicated NamedSharding over the mesh of the first mesh-sharded leaf, else None."""
    for x in leaves:
        if isinstance(x, jax.Array) and isinstance(x.sharding, jax.sharding.NamedSharding) \
                and len(x.sharding.device_set) > 1:
            return jax.sharding.NamedSharding(x.sharding.mesh, jax.sharding.PartitionSpec())
    return None


def _host_array(x) -> np.ndarray:
    """One array -> NumPy: a view of a CPU array, gathered when sharded (across processes too)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        if x.is_fully_replicated:  # every process holds all of it: no collective
            return np.asarray(x.addressable_data(0))
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)  # a view of a CPU array; a copy from an accelerator or several devices


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

"""The Ray object-store Transport for published weights (duel.transport.Transport).

    transport = RayTransport(jnp.bfloat16, bucket_bytes=64 << 20)
    ref = transport.put(state.params, version, {"erm": erm_params})  # learner: pack + one ray.put
    version, params = transport.get(ref_or_packed)  # generator: H2D of the buckets + jitted unpack

`put` returns an ObjectRef of a duel.transport.Packed. Passed as a top-level argument to an
actor method, Ray resolves it and the generator receives the Packed whose buckets are read-only,
64-byte-aligned NumPy views of the node's shared-memory object store (no copy before the H2D
transfer; on a CPU generator JAX adopts them without any copy); `get` accepts either the
ObjectRef or the Packed (`duel.transport.LocalTransport().get` is the same for a Packed).

On CPU `pack` casts into a staging area kept across versions (ray.put copies the buckets into
the object store, so the staging can be overwritten by the next version), which spares the page
faults of fresh buffers. The Learner publishes from rank 0 a host copy it gathered from every
rank; a caller that passes arrays spread over processes must call `put` on every process (the
gather in `pack` is a collective), and only process 0 puts the object (the others get None).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ray

from duel.transport import DEFAULT_BUCKET_BYTES, Packed, empty_buckets, layout, pack, packs_on_host, unpack


class RayTransport:
    def __init__(self, dtype=jnp.bfloat16, bucket_bytes: int = DEFAULT_BUCKET_BYTES):
        self.dtype, self.bucket_bytes = dtype, bucket_bytes
        self.last_bytes = 0  # bytes of the last put (publish bandwidth, metrics)
        self._staging = None  # (spec, host buckets) of the CPU path, reused across versions

    def put(self, params, version: int, extras: dict | None = None) -> ray.ObjectRef | None:
        packed = self.pack(params, version, extras)
        if jax.process_index() != 0:
            return None
        return ray.put(packed)

    def pack(self, params, version: int, extras: dict | None = None) -> Packed:
        """The Packed that `put` stores, without storing it (a Ray actor method may return it:
        Ray copies a return into the object store as the method ends, before the actor's next
        call can overwrite the CPU staging buffers)."""
        out = None
        if packs_on_host(jax.tree.leaves(params)):
            spec = layout(params, self.dtype, self.bucket_bytes)
            if self._staging is None or self._staging[0] != spec:
                self._staging = (spec, empty_buckets(spec))
            out = self._staging[1]
        buffers, spec = pack(params, self.dtype, self.bucket_bytes, out=out)
        packed = Packed(int(version), buffers, spec, dict(extras or {}))
        self.last_bytes = packed.nbytes
        return packed

    def get(self, handle, dtype=None, sharding=None):
        packed: Packed = ray.get(handle) if isinstance(handle, ray.ObjectRef) else handle
        return packed.version, unpack(packed.buffers, packed.spec, dtype, sharding)

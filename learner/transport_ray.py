"""The Ray object-store Transport for published weights (duel.transport.Transport).

    transport = RayTransport(jnp.bfloat16, bucket_bytes=64 << 20)
    ref = transport.put(state.params, version)      # learner: pack (D2H in buckets) + one ray.put
    version, params = transport.get(ref_or_packed)  # generator: H2D of the buckets + jitted unpack

`put` returns an ObjectRef of a duel.transport.Packed. Passed as a top-level argument to an
actor method, Ray resolves it and the generator receives the Packed whose buckets are read-only
NumPy views of the node's shared-memory object store (no copy before the H2D transfer); `get`
accepts either the ObjectRef or the Packed.
"""

from __future__ import annotations

import jax.numpy as jnp
import ray

from duel.transport import DEFAULT_BUCKET_BYTES, Packed, pack, unpack


class RayTransport:
    def __init__(self, dtype=jnp.bfloat16, bucket_bytes: int = DEFAULT_BUCKET_BYTES):
        self.dtype, self.bucket_bytes = dtype, bucket_bytes
        self.last_bytes = 0  # bytes of the last put (publish bandwidth, metrics)

    def put(self, params, version: int) -> ray.ObjectRef:
        buffers, spec = pack(params, self.dtype, self.bucket_bytes)
        packed = Packed(int(version), buffers, spec)
        self.last_bytes = packed.nbytes
        return ray.put(packed)

    def get(self, handle, dtype=None, sharding=None):
        packed: Packed = ray.get(handle) if isinstance(handle, ray.ObjectRef) else handle
        return packed.version, unpack(packed.buffers, packed.spec, dtype, sharding)

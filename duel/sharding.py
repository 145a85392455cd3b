"""Learner sharding over a JAX device mesh: "none", "dp" (data parallel) or "fsdp".

    mesh = make_mesh("fsdp")                               # 1-D mesh, axis "data", all devices
    state = shard_train_state(state, mesh, "fsdp")         # params + AdamW moments sharded
    batch = shard_batch(batch, mesh, "fsdp")               # pairs split over "data"
    batch = place_batch(full_batch, mesh, "fsdp")          # or: every process holds all rows
    step = sharded_train_step(state, batch, mesh, "fsdp", cfg)
    state, metrics = step(state, batch)                    # duel.train.train_step, same numbers
    step = make_sharded_step(mesh, "fsdp", cfg)            # or: shards host batches, caches jits

Strategies (one mesh axis, `DATA_AXIS`, over every device of every process):
  none  one device; nothing is split (the reference the other two are tested against).
  dp    parameters and optimizer state replicated on every device, the batch split on its
        leading (pair) axis; XLA all-reduces the gradients.
  fsdp  the batch split as in dp, and every parameter and AdamW moment sharded along its largest
        axis that the mesh size divides (ZeRO-3 style); XLA all-gathers weights for the forward
        and backward pass and reduce-scatters the gradients. Arrays with no divisible axis, or
        smaller than `min_shard_size` elements, stay replicated.

The step is duel.train.train_step itself, called inside one more `jax.jit` whose in/out
shardings pin the layout: nothing of the train step is forked. Only `jax.sharding` is used, so
the same code runs on GPU and TPU meshes and across hosts (after `learner.distributed`
initialised `jax.distributed`, `jax.devices()` lists the devices of every process).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

STRATEGIES = ("none", "dp", "fsdp")
DATA_AXIS = "data"


def check_strategy(strategy: str) -> str:
    if strategy not in STRATEGIES:
        raise ValueError(f"learner sharding strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}")
    return strategy


def make_mesh(strategy: str = "dp", devices: Sequence[Any] | None = None) -> Mesh:
    """A 1-D mesh named DATA_AXIS over `devices` (default: every device of every process).

    "none" keeps the first device only. The device order comes from jax.make_mesh (topology
    aware on TPU/GPU) when all devices are used.
    """
    check_strategy(strategy)
    all_devices = devices is None
    devices = list(jax.devices() if devices is None else devices)
    if not devices:
        raise ValueError("make_mesh: no devices")
    if strategy == "none":
        devices = devices[:1]
    if all_devices and strategy != "none":
        return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,))
    return Mesh(np.asarray(devices, dtype=object), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, PartitionSpec())


def fsdp_spec(shape: Sequence[int], n: int, min_shard_size: int = 0) -> PartitionSpec:
    """Shard the largest axis that n divides (first such axis on ties); replicate otherwise."""
    if n <= 1 or int(np.prod(shape, dtype=np.int64)) < max(min_shard_size, 1):
        return PartitionSpec()
    axes = [i for i, d in enumerate(shape) if d % n == 0 and d >= n]
    if not axes:
        return PartitionSpec()
    best = max(axes, key=lambda i: (shape[i], -i))
    return PartitionSpec(*[DATA_AXIS if i == best else None for i in range(len(shape))])


def param_shardings(tree, mesh: Mesh, strategy: str, min_shard_size: int = 0):
    """A NamedSharding per leaf of a parameter-shaped tree (params, AdamW moments)."""
    check_strategy(strategy)
    n = mesh.shape[DATA_AXIS]
    if strategy != "fsdp":
        return jax.tree.map(lambda _: replicated(mesh), tree)
    return jax.tree.map(lambda x: NamedSharding(mesh, fsdp_spec(np.shape(x), n, min_shard_size)), tree)


def train_state_shardings(state, mesh: Mesh, strategy: str, min_shard_size: int = 0):
    """Shardings shaped like a duel.train.TrainState: params and opt_state by `param_shardings`
    (a moment has its parameter's shape, so it gets the same layout), step replicated, rest (the
    frozen base under LoRA, duel.models.lora) laid out like parameters: fsdp shards it too."""
    rep = replicated(mesh)
    return state.replace(
        step=rep,
        params=param_shardings(state.params, mesh, strategy, min_shard_size),
        opt_state=param_shardings(state.opt_state, mesh, strategy, min_shard_size),
        rest=param_shardings(state.rest, mesh, strategy, min_shard_size),
    )


def shard_train_state(state, mesh: Mesh, strategy: str, min_shard_size: int = 0):
    """Place a TrainState on the mesh with the strategy's layout (single-process: a device_put)."""
    return place(state, train_state_shardings(state, mesh, strategy, min_shard_size))


def batch_sharding(mesh: Mesh, strategy: str) -> NamedSharding:
    """Split the leading (pair) axis over DATA_AXIS; "none" replicates (one device anyway)."""
    check_strategy(strategy)
    return replicated(mesh) if strategy == "none" else NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def batch_shardings(batch, mesh: Mesh, strategy: str):
    """batch_sharding for every leaf of a batch pytree (PairTensors: None fields stay None).

    A host leaf of a multi-process mesh holds this process's rows (shard_batch); a leaf that
    already is a global jax.Array holds every row."""
    n = mesh.shape[DATA_AXIS]
    sh = batch_sharding(mesh, strategy)
    procs = jax.process_count() if _multiprocess(mesh) else 1
    global_rows = {int(np.shape(x)[0]) * (1 if _is_global(x) else procs) for x in jax.tree.leaves(batch)}
    _check_rows(global_rows, n, strategy)
    return jax.tree.map(lambda _: sh, batch)


def _check_rows(rows, n: int, strategy: str) -> None:
    bad = [r for r in sorted(rows) if strategy != "none" and r % n]
    if bad:
        raise ValueError(f"a batch of {bad[0]} pairs does not split over {n} devices (strategy {strategy!r}); "
                         f"make prompts_per_step a multiple of the device count")


def shard_batch(batch, mesh: Mesh, strategy: str):
    """Place a host batch on the mesh. With several processes each passes its own rows (the
    global batch is their concatenation in process order); a leaf that already is a global
    array (place_batch, or computed on the mesh) is only moved to the batch layout."""
    shardings = batch_shardings(batch, mesh, strategy)
    if _multiprocess(mesh):
        def put(x, s):
            if _is_global(x):
                return jax.device_put(x, s)
            return jax.make_array_from_process_local_data(s, np.asarray(x))
        return jax.tree.map(put, batch, shardings)
    return jax.device_put(batch, shardings)


def place_batch(batch, mesh: Mesh, strategy: str):
    """Place the whole batch, held alike by every process, on the mesh: each device takes its
    rows of it (what the learner does: every learner process receives the full labelled batch,
    so no process has to know which rows are its own)."""
    _check_rows({int(np.shape(x)[0]) for x in jax.tree.leaves(batch)}, mesh.shape[DATA_AXIS], strategy)
    sh = batch_sharding(mesh, strategy)
    return place(batch, jax.tree.map(lambda _: sh, batch))


def place_params(tree, mesh: Mesh, strategy: str, min_shard_size: int = 0):
    """A parameter-shaped tree (e.g. the reference policy) in the strategy's parameter layout."""
    return place(tree, param_shardings(tree, mesh, strategy, min_shard_size))


def gather(tree):
    """Host (NumPy) copy of a pytree of arrays laid out over any mesh. An array spread over
    several processes is all-gathered: with several processes every one must call this, in
    the same order (a collective)."""
    from jax.experimental import multihost_utils

    def get(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(jax.device_get(x))
    return jax.tree.map(get, tree)


def sharded_train_step(state, batch, mesh: Mesh, strategy: str, cfg, *, step_fn: Callable | None = None,
                       min_shard_size: int = 0, donate: bool = True):
    """duel.train.train_step jitted with this layout: (state, batch) -> (state, metrics).

    `state` and `batch` are examples (shapes and tree structure; their values are not used).
    Output state keeps the input layout; metrics come back replicated. `step_fn(state, batch,
    cfg)` defaults to duel.train.train_step (sft_step works too).
    """
    if step_fn is None:
        from duel.train import train_step as step_fn
    state_sh = train_state_shardings(state, mesh, strategy, min_shard_size)
    batch_sh = batch_shardings(batch, mesh, strategy)
    return jax.jit(lambda s, b: step_fn(s, b, cfg), in_shardings=(state_sh, batch_sh),
                   out_shardings=(state_sh, replicated(mesh)), donate_argnums=(0,) if donate else ())


def make_sharded_step(mesh: Mesh, strategy: str, cfg, *, step_fn: Callable | None = None,
                      min_shard_size: int = 0) -> Callable:
    """What a learner calls: step(state, host_or_device_batch) -> (state, metrics).

    Shards the batch, and compiles `sharded_train_step` once per batch structure (e.g. with or
    without XPO reference samples); new shapes retrace as with any jit. `state` must already be
    on the mesh (shard_train_state)."""
    compiled: dict = {}

    def step(state, batch):
        key = jax.tree.structure((state, batch))
        if key not in compiled:
            compiled[key] = sharded_train_step(state, batch, mesh, strategy, cfg, step_fn=step_fn,
                                               min_shard_size=min_shard_size)
        return compiled[key](state, shard_batch(batch, mesh, strategy))

    return step


def _multiprocess(mesh: Mesh) -> bool:
    return len({d.process_index for d in mesh.devices.flat}) > 1


def _is_global(x) -> bool:
    """A jax.Array laid out over the devices of several processes."""
    return isinstance(x, jax.Array) and len({d.process_index for d in x.sharding.device_set}) > 1


def place(tree, shardings):
    """device_put, or for a multi-process mesh build each global array from the (identical)
    host value every process holds (a global array is resharded as it is)."""
    leaves = jax.tree.leaves(shardings)
    if not leaves or not _multiprocess(leaves[0].mesh):
        return jax.device_put(tree, shardings)

    def put(x, s):
        if _is_global(x):
            return jax.device_put(x, s)
        x = np.asarray(jax.device_get(x))
        return jax.make_array_from_callback(x.shape, s, lambda idx: x[idx])

    return jax.tree.map(put, tree, shardings)

"""learner.distributed: two local JAX processes join one group; SLURM and Ray-style derivation.

The 2-process test runs this file as a script twice (ranks 0 and 1, a localhost coordinator);
each rank prints one JSON line.
"""

import json
import os
import subprocess
import sys

import pytest

from learner.distributed import (
    DistributedSpec,
    first_host,
    free_port,
    from_slurm,
    group_specs,
    slurm_port,
)


def _rank(addr: str, n: int, rank: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.experimental import multihost_utils

    from learner.distributed import init_distributed

    init_distributed(addr, n, rank, timeout_s=60)
    gathered = multihost_utils.process_allgather(jnp.asarray([10 * rank + 1], jnp.int32))
    # a jitted cross-process sum over a mesh of every process's device (what the learner does)
    from duel.sharding import make_mesh, shard_batch

    mesh = make_mesh("dp")
    x = shard_batch(np.full((2,), rank + 1.0, np.float32), mesh, "dp")  # each rank gives 2 rows
    total = jax.jit(jnp.sum, out_shardings=jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec()))(x)
    return {"rank": rank, "process_index": jax.process_index(), "process_count": jax.process_count(),
            "device_count": jax.device_count(), "local_device_count": jax.local_device_count(),
            "gathered": np.asarray(gathered).ravel().tolist(), "global_rows": int(x.shape[0]),
            "sum": float(np.asarray(total.addressable_data(0))), **_fsdp_over_processes(rank)}


def _fsdp_over_processes(rank: int) -> dict:
    """The fsdp train step over both processes' devices == the plain step on one local device."""
    import jax
    import numpy as np

    from duel.models import ModelConfig, build_model
    from duel.sharding import make_mesh, make_sharded_step, shard_train_state
    from duel.train import PairTensors, TrainConfig, init_train_state, train_step

    V, B, T = 32, 4, 4
    c = ModelConfig(family="llama", vocab_size=V, hidden_size=16, num_layers=1, num_heads=2, num_kv_heads=1,
                    head_dim=8, intermediate_size=32, max_position_embeddings=32)
    model = build_model(c, seed=0)
    cfg = TrainConfig(loss="dpo", beta=0.5, lr=1e-2)
    rng = np.random.default_rng(0)  # the same global batch in both processes
    ids = lambda: rng.integers(1, V, (B, T)).astype(np.int32)
    ones = np.ones((B, T), np.int32)
    batch = PairTensors(prompt_ids=ids(), prompt_mask=ones, chosen_ids=ids(), chosen_mask=ones,
                        rejected_ids=ids(), rejected_mask=ones, ref_chosen=-np.arange(B, dtype=np.float32),
                        ref_rejected=-np.ones(B, np.float32), prob=np.ones(B, np.float32),
                        weight=np.ones(B, np.float32))
    local = jax.local_devices()[0]
    ref_state, ref_m = train_step(jax.device_put(init_train_state(model, cfg), local),
                                  jax.device_put(batch, local), cfg)
    mesh = make_mesh("fsdp")
    state = shard_train_state(init_train_state(model, cfg), mesh, "fsdp")
    mine = jax.tree.map(lambda x: x[rank * B // 2:(rank + 1) * B // 2], batch)  # this process's rows
    state, m = make_sharded_step(mesh, "fsdp", cfg)(state, mine)
    err, shard_shapes = 0.0, {}
    for (path, x), r in zip(jax.tree_util.tree_leaves_with_path(state.params), jax.tree.leaves(ref_state.params)):
        for sh in x.addressable_shards:
            err = max(err, float(np.max(np.abs(np.asarray(sh.data) - np.asarray(r)[sh.index]))))
        shard_shapes[jax.tree_util.keystr(path)] = list(x.addressable_shards[0].data.shape)
    return {"fsdp_loss": float(np.asarray(m["loss"].addressable_data(0))), "ref_loss": float(ref_m["loss"]),
            "fsdp_param_err": err, "embed_shard": shard_shapes["['embed'].value"]}


@pytest.mark.slow
def test_two_local_processes_form_one_group():
    from tests.helpers.hang import HANG_TIMEOUT_S
    addr = f"127.0.0.1:{free_port('127.0.0.1')}"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    procs = [subprocess.Popen([sys.executable, __file__, addr, "2", str(r)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for r in range(2)]
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
    for r, o in enumerate(outs):
        assert o["process_index"] == r and o["process_count"] == 2
        assert o["device_count"] == 2 and o["local_device_count"] == 1
        assert o["gathered"] == [1, 11]  # rank 0 gave 1, rank 1 gave 11
        assert o["global_rows"] == 4  # 2 local rows per process
        assert o["sum"] == 6.0  # 1 + 1 + 2 + 2
        assert abs(o["fsdp_loss"] - o["ref_loss"]) <= 1e-5 and o["fsdp_param_err"] <= 1e-5
        assert o["embed_shard"] == [16, 16]  # embed [32, 16]: half on each process's device


@pytest.mark.slow
def test_ray_actors_form_one_group():
    """init_ray_group: rank 0 picks the port on its node, both actors join (Ray, local)."""
    ray = pytest.importorskip("ray")
    from learner.distributed import DistributedMember, init_ray_group

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}})
    try:
        Member = ray.remote(num_cpus=0)(DistributedMember)
        actors = [Member.remote() for _ in range(2)]
        infos = init_ray_group(actors, timeout_s=90)
    finally:
        ray.shutdown()
    assert [i["process_index"] for i in infos] == [0, 1]
    assert all(i["process_count"] == 2 and i["devices"] == 2 and i["local_devices"] == 1 for i in infos)


def test_spec_validation_and_single_process_is_a_noop():
    from learner.distributed import init_distributed

    assert init_distributed("localhost:1234", 1, 0).num_processes == 1  # never touches jax.distributed
    with pytest.raises(ValueError, match="outside"):
        DistributedSpec("h:1", 2, 2)
    with pytest.raises(ValueError, match="host:port"):
        DistributedSpec("h", 2, 0)


def test_first_host_of_slurm_nodelists():
    assert first_host("node17") == "node17"
    assert first_host("gpu[003-004,010],cpu1") == "gpu003"
    assert first_host("gpu[7,9]") == "gpu7"
    assert first_host("a-[01-02]-ib,b3") == "a-01-ib"
    assert first_host("h1,h2") == "h1"


def test_from_slurm_env():
    env = {"SLURM_PROCID": "3", "SLURM_NTASKS": "4", "SLURM_JOB_NODELIST": "gpu[012-013]",
           "SLURM_JOB_ID": "123456", "SLURM_LOCALID": "1"}
    s = from_slurm(env)
    assert s == DistributedSpec("gpu012:23456", 4, 3, None)
    assert slurm_port("123456") == 23456 and slurm_port(None) == 20000
    assert from_slurm({**env, "DUEL_COORDINATOR_PORT": "5555"}).coordinator_address == "gpu012:5555"
    assert from_slurm(env, one_device_per_task=True).local_device_ids == (1,)
    assert from_slurm({**env, "SLURM_STEP_NODELIST": "x[5-6]"}).coordinator_address.startswith("x5:")
    with pytest.raises(ValueError, match="SLURM_PROCID"):
        from_slurm({"SLURM_NTASKS": "2", "SLURM_JOB_NODELIST": "a"})


def test_group_specs_rank_order():
    specs = group_specs("10.0.0.5:41234", 3)
    assert [s.process_id for s in specs] == [0, 1, 2]
    assert {s.coordinator_address for s in specs} == {"10.0.0.5:41234"}
    assert 0 < free_port() < 65536


if __name__ == "__main__":
    print(json.dumps(_rank(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))))

"""duel.sharding: the dp and fsdp train step on 4 forced host devices == the one-device step.

XLA_FLAGS must be set before jax is imported, so the comparison runs in a subprocess: this file
run as a script (`python tests/duel/test_sharding.py`) does the work and prints one JSON line.
"""

import json
import os
import subprocess
import sys

import pytest

NDEV = 4


def _worker() -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from duel.models import ModelConfig, build_model
    from duel.sharding import (
        DATA_AXIS,
        make_mesh,
        make_sharded_step,
        shard_batch,
        shard_train_state,
        sharded_train_step,
    )
    from duel.train import PairTensors, TrainConfig, init_train_state, train_step

    assert jax.device_count() == NDEV, jax.devices()
    V, B, TP, N = 64, 8, 5, 4
    c = ModelConfig(family="llama", vocab_size=V, hidden_size=16, num_layers=2, num_heads=4, num_kv_heads=2,
                    head_dim=4, intermediate_size=32, max_position_embeddings=64)
    model = build_model(c, seed=3)
    cfg = TrainConfig(loss="dpo", beta=0.5, lr=1e-2, clip_norm=1.0)
    rng = np.random.default_rng(0)

    def batch(seed):
        rng = np.random.default_rng(seed)
        pm = np.ones((B, TP), np.int32)
        pm[1, :2] = 0
        cm = np.ones((B, N), np.int32)
        cm[2, 3:] = 0
        w = np.ones(B, np.float32)
        w[5] = 0.0
        return PairTensors(
            prompt_ids=rng.integers(1, V, (B, TP)).astype(np.int32), prompt_mask=pm,
            chosen_ids=rng.integers(1, V, (B, N)).astype(np.int32), chosen_mask=cm,
            rejected_ids=rng.integers(1, V, (B, N)).astype(np.int32), rejected_mask=np.ones((B, N), np.int32),
            ref_chosen=-rng.uniform(10, 20, B).astype(np.float32),
            ref_rejected=-rng.uniform(10, 20, B).astype(np.float32),
            prob=rng.uniform(0.5, 1.0, B).astype(np.float32), weight=w)

    del rng
    batches = [batch(s) for s in range(3)]

    # reference: the plain one-device train step, 3 updates
    state = init_train_state(model, cfg)
    ref_loss = []
    for b in batches:
        state, m = train_step(state, jax.tree.map(jnp.asarray, b), cfg)
        ref_loss.append(float(m["loss"]))
    ref_params = jax.tree.map(np.asarray, state.params)

    out = {"devices": jax.device_count(), "ref_loss": ref_loss}
    for strategy in ("dp", "fsdp"):
        mesh = make_mesh(strategy)
        state = shard_train_state(init_train_state(model, cfg), mesh, strategy)
        losses = []
        if strategy == "dp":  # explicit: placed batches, one jitted step
            step = sharded_train_step(state, batches[0], mesh, strategy, cfg)
            for b in batches:
                state, m = step(state, shard_batch(b, mesh, strategy))
                losses.append(float(m["loss"]))
        else:  # what the learner calls: host batches in, sharding and compiling inside
            step = make_sharded_step(mesh, strategy, cfg)
            for b in batches:
                state, m = step(state, b)
                losses.append(float(m["loss"]))
        sb = shard_batch(batches[0], mesh, strategy)
        err = max(float(np.max(np.abs(np.asarray(p) - r)))
                  for p, r in zip(jax.tree.leaves(state.params), jax.tree.leaves(ref_params)))
        p, mu = state.params, state.opt_state[1][0].mu  # chain(clip, adamw): adam's ScaleByAdamState
        out[strategy] = {
            "loss": losses,
            "max_param_err": err,
            "mesh": dict(mesh.shape),
            "batch_shard": list(sb.prompt_ids.addressable_shards[0].data.shape),
            "shards": {name: [list(x.sharding.spec), list(x.addressable_shards[0].data.shape), list(x.shape)]
                       for name, x in [("embed", p["embed"].get_value()), ("w_up", p["layers"]["w_up"].get_value()),
                                       ("wq", p["layers"]["wq"].get_value()), ("attn_norm", p["layers"]["attn_norm"].get_value()),
                                       ("final_norm", p["final_norm"].get_value()), ("mu_w_down", mu["layers"]["w_down"].get_value())]},
            "step_sharding": list(state.step.sharding.spec),
        }
        assert DATA_AXIS in mesh.shape
    # a batch that does not split over the devices fails with a message
    try:
        shard_batch(jax.tree.map(lambda x: x[:6], batches[0]), make_mesh("dp"), "dp")
        out["bad_batch"] = ""
    except ValueError as e:
        out["bad_batch"] = str(e)
    return out


@pytest.fixture(scope="module")
def result():
    from tests.helpers.hang import HANG_TIMEOUT_S
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={NDEV}", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, __file__], check=False, env=env, capture_output=True, text=True, timeout=HANG_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["dp", "fsdp"])
def test_sharded_step_equals_single_device(result, strategy):
    r = result[strategy]
    assert result["devices"] == NDEV and r["mesh"] == {"data": NDEV}
    assert r["batch_shard"] == [8 // NDEV, 5]  # 8 pairs split over 4 devices
    assert max(abs(a - b) for a, b in zip(r["loss"], result["ref_loss"])) <= 1e-5
    assert result["ref_loss"][0] != result["ref_loss"][2]  # the steps really changed the params
    assert r["max_param_err"] <= 1e-5


@pytest.mark.slow
def test_fsdp_shards_params_and_moments(result):
    s = result["fsdp"]["shards"]
    # [spec, local shard shape, global shape]: the largest axis divisible by 4 is split
    assert s["embed"] == [["data", None], [16, 16], [64, 16]]
    assert s["w_up"] == [[None, None, "data"], [2, 16, 8], [2, 16, 32]]
    assert s["wq"] == [[None, "data", None, None], [2, 4, 4, 4], [2, 16, 4, 4]]
    assert s["attn_norm"] == [[None, "data"], [2, 4], [2, 16]]
    assert s["final_norm"] == [["data"], [4], [16]]
    assert s["mu_w_down"] == [[None, "data", None], [2, 8, 16], [2, 32, 16]]  # AdamW moment like its param
    assert result["fsdp"]["step_sharding"] == []
    dp = result["dp"]["shards"]
    assert dp["embed"] == [[], [64, 16], [64, 16]]  # dp: replicated


@pytest.mark.slow
def test_bad_batch_size_is_named(result):
    assert "6 pairs does not split over 4 devices" in result["bad_batch"]


def test_fsdp_spec_rule():
    from jax.sharding import PartitionSpec as P

    from duel.sharding import fsdp_spec, make_mesh

    assert fsdp_spec((2, 16, 32), 4) == P(None, None, "data")
    assert fsdp_spec((8, 8), 4) == P("data", None)  # ties: the first axis
    assert fsdp_spec((3, 5), 4) == P()  # nothing divisible: replicated
    assert fsdp_spec((), 4) == P()  # scalars (AdamW count)
    assert fsdp_spec((64, 16), 4, min_shard_size=4096) == P()  # too small to be worth it
    assert fsdp_spec((64, 16), 1) == P()
    with pytest.raises(ValueError, match="one of none, dp, fsdp"):
        make_mesh("tp")


if __name__ == "__main__":
    print(json.dumps(_worker()))

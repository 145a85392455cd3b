"""duel.checkpoint: bit-identical restore (bf16, PRNG keys), keep-last-N, corrupt -> fallback."""

import json
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from duel.checkpoint import CheckpointError, all_steps, checkpoint_dir, latest_step, restore, save


def make_state(seed: int):
    k = jax.random.key(seed)
    ks = jax.random.split(k, 4)
    params = {"w": jax.random.normal(ks[0], (8, 16), jnp.float32),
              "emb": jax.random.normal(ks[1], (32, 8)).astype(jnp.bfloat16)}
    opt = optax.adamw(1e-3).init(params)
    return {"policy": params, "opt": opt,
            "erm": {"members": jax.random.normal(ks[2], (3, 8, 4))},
            "buffer": np.arange(12, dtype=np.int64).reshape(3, 4) * (seed + 1),
            "key": ks[3], "raw_key": jax.random.PRNGKey(seed),
            "ukey": jax.random.key(seed, impl="rbg")}


def assert_bit_identical(a, b):
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            assert jax.dtypes.issubdtype(y.dtype, jax.dtypes.prng_key)
            assert jax.random.key_impl(x) == jax.random.key_impl(y)
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.asarray(x).tobytes() == np.asarray(y).tobytes()


def test_round_trip_is_bit_identical_with_meta(tmp_path):
    state = make_state(1)
    meta = {"counters": {"step": 5, "queries": 40, "synthetic": 3, "version": 5, "prompt_pos": 80},
            "config": {"seed": 1}}
    path = save(tmp_path, 5, state, meta)
    assert path == checkpoint_dir(tmp_path) / "5" and path.is_dir()
    r = restore(tmp_path, make_state(2))  # the template's values do not matter
    assert r.step == 5 and r.meta == meta and r.refused == []
    assert_bit_identical(r.state, state)
    assert r.state["policy"]["emb"].dtype == jnp.bfloat16
    assert isinstance(r.state["buffer"], np.ndarray)
    # the restored key draws exactly what the saved key draws
    assert (jax.random.normal(r.state["key"], (3,)) == jax.random.normal(state["key"], (3,))).all()


def test_abstract_template_restores_the_same_arrays(tmp_path):
    state = make_state(3)
    save(tmp_path, 1, state)
    abstract = jax.tree.map(lambda x: x if isinstance(x, np.ndarray)
                            else jax.ShapeDtypeStruct(x.shape, x.dtype), state)
    assert_bit_identical(restore(tmp_path, abstract).state, state)


def test_keep_last_n_and_latest_step(tmp_path):
    assert latest_step(tmp_path) is None and restore(tmp_path, make_state(0)) is None
    for s in (1, 2, 3, 4):
        save(tmp_path, s, make_state(s), {"s": s}, keep=2)
    assert all_steps(tmp_path) == [3, 4] and latest_step(tmp_path) == 4
    r = restore(tmp_path, make_state(0), step=3)
    assert r.meta == {"s": 3}
    assert_bit_identical(r.state, make_state(3))
    with pytest.raises(CheckpointError, match=r"no checkpoint for step 1; available: \[3, 4\]"):
        restore(tmp_path, make_state(0), step=1)


def _largest_data_file(step_dir: Path) -> Path:
    files = [p for p in (step_dir / "state" / "d").iterdir() if p.is_file()]  # the array data
    return max(files, key=lambda p: p.stat().st_size)


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # TensorStore
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # TensorStore: coroutine never awaited
@pytest.mark.parametrize("damage", ["truncate", "garble", "meta", "delete_state", "checksum"])
def test_corrupt_newest_falls_back_to_previous(tmp_path, damage, caplog):
    save(tmp_path, 10, make_state(10), {"step": 10})
    save(tmp_path, 20, make_state(20), {"step": 20})
    newest = checkpoint_dir(tmp_path) / "20"
    if damage == "truncate":
        f = _largest_data_file(newest)
        os.truncate(f, f.stat().st_size // 2)
    elif damage == "garble":
        f = _largest_data_file(newest)
        data = bytearray(f.read_bytes())
        for i in range(len(data) // 2, len(data) // 2 + 16):
            data[i] ^= 0xFF
        f.write_bytes(bytes(data))
    elif damage == "meta":
        (newest / "meta" / "metadata").write_text('{"checksums": {tru')
    elif damage == "checksum":  # data that decodes but is not what was saved
        record = json.loads((newest / "meta" / "metadata").read_text())
        record["checksums"]["['policy']['w']"] = "0" * 64
        (newest / "meta" / "metadata").write_text(json.dumps(record))
    else:
        import shutil

        shutil.rmtree(newest / "state")
    with caplog.at_level("WARNING", logger="duel.checkpoint"):
        r = restore(tmp_path, make_state(0))
    assert r.step == 10 and r.meta == {"step": 10}
    assert_bit_identical(r.state, make_state(10))
    assert len(r.refused) == 1 and f"{newest} refused (corrupt or partial):" in r.refused[0]
    if damage == "checksum":
        assert "checksum mismatch in 1 arrays (first: ['policy']['w'])" in r.refused[0]
    assert any("refused" in m for m in caplog.messages)
    # the resumed run saves step 20 again: the refused one is moved aside, not deleted
    save(tmp_path, 20, make_state(21), {"step": 20})
    assert all_steps(tmp_path) == [10, 20]
    assert len(list((tmp_path / "checkpoints-superseded").iterdir())) == 1
    assert_bit_identical(restore(tmp_path, make_state(0)).state, make_state(21))


def test_all_refused_raises_and_partial_tmp_is_not_a_step(tmp_path):
    save(tmp_path, 1, make_state(1))
    (checkpoint_dir(tmp_path) / "2.orbax-checkpoint-tmp-123").mkdir()  # crash mid-save
    assert all_steps(tmp_path) == [1]
    wrong = {"only": jnp.zeros(3)}
    with pytest.raises(CheckpointError, match="no usable checkpoint.*state structure differs"):
        restore(tmp_path, wrong)

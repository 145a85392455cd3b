"""policy.lora in the Learner: only adapters are trained, held in AdamW, checkpointed and published;
the frozen base is sharded under fsdp; resume is exact; `duel export` merges or writes PEFT.

The learners run in a subprocess with 2 forced host devices (XLA_FLAGS must be set before jax
is imported): this file run as a script does the work and prints one JSON line.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

NDEV = 2
LORA = {"policy.lora.rank": 4, "policy.lora.alpha": 8.0, "optim.lr": 1e-2}


def _worker(root: str) -> dict:
    import jax

    from duel.config import save_config
    from duel.models import lora
    from learner.learner import Learner
    from tests.helpers.tiny import tiny_config, tiny_model_dir
    from tests.learner.test_sharded_learner import labeled_batch

    assert jax.device_count() == NDEV, jax.devices()
    model = tiny_model_dir(os.path.join(root, "policy"), hidden=16, layers=2)

    def learner(name, **over):
        cfg = tiny_config(model, **{**LORA, "learner.min_shard_size": 0, **over})
        os.makedirs(os.path.join(root, name), exist_ok=True)
        save_config(cfg, os.path.join(root, name, "config.yaml"))
        return Learner(cfg, model, os.path.join(root, name))

    def run(lrn, steps):
        return [lrn.update(labeled_batch(t, lrn.model_config.vocab_size, lrn.feature_dim), t)["loss"] for t in steps]

    def host(tree):
        return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]

    def nbytes(tree):
        return int(sum(np.asarray(x).nbytes for x in jax.tree.leaves(jax.device_get(tree))))

    out = {}
    lrn = learner("none", **{"reference.schedule": "ema", "reference.tau": 0.5})
    base0 = host(lrn._split_rest()[0])
    adapter_bytes = nbytes(lrn.state.params)
    out["adapter_bytes"] = adapter_bytes
    out["base_bytes"] = nbytes(lrn._split_rest()[0])
    out["opt_bytes"] = nbytes(lrn.state.opt_state)
    out["loss"] = run(lrn, range(3))
    out["base_bit_equal"] = all(np.array_equal(a, b) for a, b in zip(base0, host(lrn._split_rest()[0])))
    out["ref_is_adapters"] = nbytes(lrn.reference.params) == adapter_bytes
    # publish as Learner.publish does (its RayTransport puts this Packed in the object store), and
    # a generator built from the run config installs it on its own base
    from actors.generator import GeneratorCore, GeneratorSpec
    from duel.transport import LocalTransport, host as to_host

    packed = LocalTransport(lrn.publish_dtype).put(lrn.host_params(), lrn.version,
                                                   {"erm": to_host(lrn.erm.params), "checksum": ""})
    out["publish_bytes"] = packed.nbytes
    gen = GeneratorCore(model, GeneratorSpec.from_config(lrn.cfg))
    gen.load(packed, lrn.version)
    ids = np.array([[0, 0, 5, 6, 7, 8], [3, 4, 5, 6, 7, 9]], np.int32)
    mask = (ids != 0).astype(np.int32)
    out["generator_err"] = float(np.abs(np.asarray(gen.policy(ids, mask)) -
                                        np.asarray(lrn.policy_model()(ids, mask))).max())
    out["generator_ref_shares_base"] = all(
        v.unsafe_buffer_pointer() == gen.policy.params()[k].unsafe_buffer_pointer()
        for k, v in gen.encoder.params().items())
    out["generator_ref_is_base"] = float(np.abs(np.asarray(gen.encoder(ids, mask)) - np.asarray(
        lora.base_model(lrn.policy_model())(ids, mask))).max())
    out["tree_bytes"] = nbytes(lrn._tree()["policy"])
    lrn.save(3, {})

    fsdp = learner("fsdp", **{"reference.schedule": "ema", "reference.tau": 0.5, "learner.sharding": "fsdp"})
    out["fsdp_loss"] = run(fsdp, range(3))
    w_up = fsdp._split_rest()[0]["layers"]["w_up"].get_value()
    out["fsdp_base_shard"] = [list(w_up.addressable_shards[0].data.shape), list(w_up.shape)]
    out["fsdp_param_err"] = max(float(np.max(np.abs(a - b))) for a, b in
                                zip(host(fsdp.state.params), host(lrn.state.params)))

    # exact resume: stop after step 2, a fresh Learner restores and takes step 3
    straight = learner("resume")
    run(straight, range(2))
    straight.save(2, {})
    import shutil

    shutil.copytree(os.path.join(root, "resume"), os.path.join(root, "resumed"))
    run(straight, [2])
    resumed = Learner(straight.cfg, model, os.path.join(root, "resumed"))
    meta = resumed.restore()
    run(resumed, [2])
    a, b = straight._tree(), resumed._tree()
    out["resume"] = {"checkpoint_step": meta["checkpoint_step"],
                     "bit_equal": all(np.array_equal(x, y) for x, y in zip(host(a), host(b))),
                     "base_equal": all(np.array_equal(x, y) for x, y in
                                       zip(host(straight._split_rest()[0]), host(resumed._split_rest()[0])))}
    # what the merged export must reproduce: the LoRA policy's logits on a left-padded batch
    ids = np.array([[0, 0, 5, 6, 7, 8], [3, 4, 5, 6, 7, 9]], np.int32)
    mask = (ids != 0).astype(np.int32)
    out["logits"] = np.asarray(lrn.policy_model()(ids, mask)).tolist()
    out["ids"] = ids.tolist()
    out["spec"] = list(lora.adapter_shapes(lrn.lora, lrn.model_config))
    return out


@pytest.fixture(scope="module")
def result():
    from tests.helpers.hang import HANG_TIMEOUT_S

    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={NDEV}", JAX_PLATFORMS="cpu")
    root = tempfile.mkdtemp(prefix="duel-lora-")
    proc = subprocess.run([sys.executable, __file__, root], check=False, env=env, capture_output=True,
                          text=True, timeout=HANG_TIMEOUT_S, cwd=str(Path(__file__).resolve().parents[2]))
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r["root"] = root
    yield r
    import shutil

    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_lora_learner_trains_adapters_only_and_publishes_them(result):
    r = result
    assert r["loss"][0] != r["loss"][-1]
    assert r["base_bit_equal"]  # 3 updates left the frozen base bit for bit
    assert r["ref_is_adapters"]  # the ema reference holds adapters, not a second base
    assert r["opt_bytes"] <= 2 * r["adapter_bytes"] + 64  # AdamW mu, nu of the adapters (+ counts)
    assert r["publish_bytes"] >= r["adapter_bytes"] and r["publish_bytes"] < r["adapter_bytes"] + 64 * 32
    assert r["publish_bytes"] < r["base_bytes"]  # (a tiny model: its adapters are not much smaller)
    assert r["generator_err"] <= 1e-6  # the generator's base + published adapters == the learner's policy
    assert r["generator_ref_shares_base"] and r["generator_ref_is_base"] == 0.0  # reference: no 2nd copy
    assert r["tree_bytes"] <= r["adapter_bytes"] + r["opt_bytes"] + 16  # checkpointed: adapters + AdamW + step, no base


@pytest.mark.slow
def test_lora_fsdp_shards_the_base_and_equals_one_device(result):
    assert result["fsdp_base_shard"] == [[2, 16, 32 // NDEV], [2, 16, 32]]  # frozen w_up split
    assert max(abs(a - b) for a, b in zip(result["fsdp_loss"], result["loss"])) <= 1e-5
    assert result["fsdp_param_err"] <= 1e-5


@pytest.mark.slow
def test_lora_resume_is_bit_identical(result):
    r = result["resume"]
    assert r["checkpoint_step"] == 2 and r["bit_equal"] and r["base_equal"]


@pytest.mark.slow
def test_duel_export_merges_or_writes_peft(result, tmp_path):
    import torch
    import transformers

    from launch import cli

    run = Path(result["root"]) / "none"
    ids = np.asarray(result["ids"])
    mask = (ids != 0).astype(np.int64)
    want = np.asarray(result["logits"])
    assert cli.main(["export", str(run), str(tmp_path / "merged")]) == 0
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "merged", torch_dtype=torch.float32).eval()
    with torch.no_grad():
        got = hf(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
    assert np.abs(got[mask > 0] - want[mask > 0]).max() <= 1e-4
    assert cli.main(["export", str(run), str(tmp_path / "adapter"), "--peft"]) == 0
    cfg = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert cfg["r"] == 4 and cfg["lora_alpha"] == 8.0 and sorted(cfg["target_modules"]) == sorted(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    from safetensors.numpy import load_file

    tensors = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert len(tensors) == 2 * 7 * 2  # A and B of 7 targets in 2 layers
    if importlib_peft() is not None:
        import peft

        base = transformers.AutoModelForCausalLM.from_pretrained(cfg["base_model_name_or_path"],
                                                                 torch_dtype=torch.float32)
        with torch.no_grad():
            got = peft.PeftModel.from_pretrained(base, tmp_path / "adapter").eval()(
                input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask)).logits.numpy()
        assert np.abs(got[mask > 0] - want[mask > 0]).max() <= 1e-4


def importlib_peft():
    import importlib.util

    return importlib.util.find_spec("peft")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    print(json.dumps(_worker(sys.argv[1])))

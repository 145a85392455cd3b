"""learner.sharding: the Learner with dp / fsdp on 4 forced host devices == the one-device Learner.

XLA_FLAGS must be set before jax is imported, so the learners run in a subprocess: this file run
as a script does the work and prints one JSON line. Three learner steps on synthetic labelled
batches (tiny Llama, an `ema` reference so the learner's own reference pass runs on the mesh);
then an fsdp run checkpointed after step 2 and resumed by a fresh Learner ends bit-identical
to the uninterrupted one. The two-process test runs the whole loop (Ray) with
`learner.processes: 2` against the one-process run.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

NDEV = 4
STEPS = 3


def labeled_batch(step: int, vocab: int, features: int, P: int = 4, M: int = 4):
    """A LabeledBatch of P prompts x M candidates, seeded by step (what the label stage hands over)."""
    import numpy as np

    from duel.records import CandidateBatch, LabeledBatch, PairBatch, PromptBatch

    rng = np.random.default_rng(100 + step)
    Tp, N = 5, 4
    mask = np.ones((P, M, N), np.int32)
    mask[0, 1, 3:] = 0
    pm = np.ones((P, Tp), np.int32)
    pm[2, :2] = 0
    prompts = PromptBatch([f"p{step}-{i}" for i in range(P)], [f"q{i}" for i in range(P)],
                          rng.integers(3, vocab, (P, Tp)).astype(np.int32), pm, step=step, index=step * P)
    cb = CandidateBatch(prompts, rng.integers(3, vocab, (P, M, N)).astype(np.int32), mask,
                        -rng.uniform(0.5, 3, (P, M, N)).astype(np.float32),
                        -rng.uniform(0.5, 3, (P, M, N)).astype(np.float32),
                        rng.normal(size=(P, M, features)).astype(np.float32),
                        [[f"r{m}" for m in range(M)] for _ in range(P)], version=step)
    pairs = np.stack([rng.permutation(M)[:2] for _ in range(P)]).astype(np.int32)
    pb = PairBatch(cb, pairs, np.zeros(P, bool), np.zeros(P, bool), "ee_ts",
                   pair_ids=[f"s{step}-{i}" for i in range(P)])
    prob = rng.uniform(0, 1, P).astype(np.float32)
    return LabeledBatch(pb, prob, (rng.uniform(0, 1, P) < prob).astype(np.int8), [{} for _ in range(P)])


def _worker(root: str) -> dict:
    import jax
    import numpy as np

    from duel.config import ConfigError
    from learner.learner import Learner
    from tests.helpers.tiny import tiny_config, tiny_model_dir

    assert jax.device_count() == NDEV, jax.devices()
    model = tiny_model_dir(os.path.join(root, "policy"))

    def cfg(strategy, **over):
        return tiny_config(model, **{"learner.sharding": strategy, "learner.min_shard_size": 0,
                                     "reference.schedule": "ema", "reference.tau": 0.5,
                                     "optim.lr": 1e-2, **over})

    def learner(strategy, name, **over):
        return Learner(cfg(strategy, **over), model, os.path.join(root, name))

    def run(lrn, steps):
        losses = []
        for t in steps:
            lb = labeled_batch(t, lrn.model_config.vocab_size, lrn.feature_dim)
            losses.append(lrn.update(lb, t)["loss"])
        return losses

    def host(tree):
        return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]

    out = {"devices": jax.device_count()}
    finals = {}
    for strategy in ("none", "dp", "fsdp"):
        lrn = learner(strategy, strategy)
        loss = run(lrn, range(STEPS))
        finals[strategy] = {"params": host(lrn.state.params), "ref": host(lrn.reference.params)}
        p = lrn.state.params
        mu = lrn.state.opt_state[1][0].mu
        out[strategy] = {
            "loss": loss,
            "mesh": None if lrn.mesh is None else dict(lrn.mesh.shape),
            "shards": {name: [list(x.addressable_shards[0].data.shape), list(x.shape)]
                       for name, x in [("embed", p["embed"].get_value()),
                                       ("w_up", p["layers"]["w_up"].get_value()),
                                       ("mu_w_up", mu["layers"]["w_up"].get_value()),
                                       ("ref_w_up", lrn.reference.params["layers"]["w_up"].get_value())]},
            "host_params_err": max(float(np.max(np.abs(a - b))) for a, b in
                                   zip(host(lrn.host_params()), finals[strategy]["params"])),
        }
    for strategy in ("dp", "fsdp"):
        out[strategy]["max_param_err"] = max(float(np.max(np.abs(a - b))) for a, b in
                                             zip(finals[strategy]["params"], finals["none"]["params"]))
        out[strategy]["max_ref_err"] = max(float(np.max(np.abs(a - b))) for a, b in
                                           zip(finals[strategy]["ref"], finals["none"]["ref"]))

    # exact resume of an fsdp run: stop after step 2, a fresh Learner restores and takes step 3
    straight = learner("fsdp", "resume")
    run(straight, range(2))
    straight.save(2, {})
    shutil.copytree(os.path.join(root, "resume"), os.path.join(root, "resumed"))  # the stop
    run(straight, [2])
    resumed = learner("fsdp", "resumed")
    meta = resumed.restore()
    w_up = resumed.state.params["layers"]["w_up"].get_value()
    restored_layout = [list(w_up.sharding.spec), list(w_up.addressable_shards[0].data.shape)]
    run(resumed, [2])
    a, b = straight._tree(), resumed._tree()
    out["resume"] = {
        "checkpoint_step": meta["checkpoint_step"], "restored_layout": restored_layout,
        "same_structure": jax.tree.structure(a) == jax.tree.structure(b),
        "bit_equal": all(np.array_equal(x, y) for x, y in zip(host(a), host(b))),
        "arrays": len(jax.tree.leaves(a)),
        "params_equal_fsdp_run": all(np.array_equal(x, y) for x, y in
                                     zip(host(resumed.state.params), finals["fsdp"]["params"])),
    }
    try:  # 6 pairs do not split over 4 devices
        learner("dp", "bad", prompts_per_step=6)
        out["bad_batch"] = ""
    except ConfigError as e:
        out["bad_batch"] = str(e)
    return out


@pytest.fixture(scope="module")
def result():
    from tests.helpers.hang import HANG_TIMEOUT_S
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={NDEV}", JAX_PLATFORMS="cpu")
    with tempfile.TemporaryDirectory() as root:
        proc = subprocess.run([sys.executable, __file__, root], check=False, env=env, capture_output=True,
                              text=True, timeout=HANG_TIMEOUT_S, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["dp", "fsdp"])
def test_sharded_learner_equals_one_device(result, strategy):
    r, ref = result[strategy], result["none"]
    assert result["devices"] == NDEV and r["mesh"] == {"data": NDEV} and ref["mesh"] is None
    assert max(abs(a - b) for a, b in zip(r["loss"], ref["loss"])) <= 1e-5
    assert ref["loss"][0] != ref["loss"][-1]  # the steps moved the policy
    assert r["max_param_err"] <= 1e-5  # policy after 3 steps
    assert r["max_ref_err"] <= 1e-5  # the ema reference follows it on the mesh
    assert r["host_params_err"] == 0.0


@pytest.mark.slow
def test_fsdp_learner_state_is_split(result):
    s, dp = result["fsdp"]["shards"], result["dp"]["shards"]
    # [local shard shape, global shape]: tiny llama, hidden 16, intermediate 32, 1 layer
    assert s["w_up"] == [[1, 16, 8], [1, 16, 32]]
    assert s["mu_w_up"] == s["w_up"]  # AdamW moment laid out like its parameter
    assert s["ref_w_up"] == s["w_up"]  # so is the reference
    assert s["embed"] == [[18, 16 // NDEV], [18, 16]]  # vocab 18 does not divide by 4: hidden split
    assert dp["w_up"] == [[1, 16, 32], [1, 16, 32]]  # dp: replicated


@pytest.mark.slow
def test_sharded_resume_is_bit_identical(result):
    r = result["resume"]
    assert r["checkpoint_step"] == 2
    assert r["restored_layout"] == [[None, None, "data"], [1, 16, 8]]  # restored into the fsdp layout
    assert r["same_structure"] and r["arrays"] > 20
    assert r["bit_equal"]  # policy, AdamW, reference, ERM, replay buffer
    assert r["params_equal_fsdp_run"]  # and the same as the first fsdp learner's 3 steps


@pytest.mark.slow
def test_batch_that_does_not_split_is_a_config_error(result):
    msg = result["bad_batch"]
    assert "'prompts_per_step' (6) must be a multiple of the learner's device count 4" in msg
    assert "learner.sharding: dp" in msg and "config.yaml" in msg


@pytest.fixture
def ray_session():
    ray = pytest.importorskip("ray")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {"PYTHONPATH": root, "JAX_PLATFORMS": "cpu", "XLA_FLAGS": "",  # one CPU device per process
           "JAX_COMPILATION_CACHE_DIR": os.environ["JAX_COMPILATION_CACHE_DIR"], "DUEL_CACHE": os.environ["DUEL_CACHE"]}
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": env})
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_two_process_learner_run_equals_one_process(tmp_path, ray_session):
    """learner.processes=2 (fsdp over both processes' devices), stopped after step 2 by a signal
    and resumed, ends with the one-process run's policy (<= 1e-5), queries and ledger."""
    import jax
    import numpy as np

    from duel.ledger import Ledger
    from duel.metrics import read_metrics
    from learner.loop import RunStopped, run_experiment
    from learner.offline import restored_learner
    from tests.helpers.tiny import tiny_config, tiny_model_dir

    model = tiny_model_dir(tmp_path / "policy")
    seen: dict = {}

    def hook(stop_at=None):
        def after_step(loop, step):
            seen.setdefault("group", loop.learners.info)
            if step == loop.cfg.steps:  # every rank takes part in the gather; rank 0 answers
                seen["params"] = [np.asarray(x) for x in jax.tree.leaves(loop.learners.call("host_params"))]
            if step == stop_at:
                loop._stop_signal = "SIGTERM"
        return after_step

    # one generator (tiny_config has 2): one actor process fewer to start and compile in each of the
    # three runs; the learners under test are the same
    over = {"optim.lr": 1e-2, "eval.num_prompts": 4, "resources.generators": 1}
    one = run_experiment(tiny_config(model, **over), tmp_path / "one", hooks={"after_step": hook()})
    ref = seen.pop("params")
    assert seen.pop("group") is None  # one LearnerActor
    cfg = tiny_config(model, **over, **{"learner.processes": 2, "learner.sharding": "fsdp",
                                        "learner.min_shard_size": 0})
    with pytest.raises(RunStopped, match="SIGTERM received; checkpointed step 2"):
        run_experiment(cfg, tmp_path / "two", hooks={"after_step": hook(stop_at=2)})
    seen.clear()
    two = run_experiment(cfg, tmp_path / "two", hooks={"after_step": hook()})  # resumes at step 2
    assert [(g["rank"], g["processes"], g["devices"], g["local_devices"]) for g in seen["group"]] == \
        [(0, 2, 2, 1), (1, 2, 2, 1)]
    assert (two["step"], two["version"], two["queries"]) == (one["step"], one["version"], one["queries"]) == (3, 3, 12)
    err = max(float(np.max(np.abs(a - b))) for a, b in zip(seen["params"], ref))
    assert len(ref) == len(seen["params"]) > 5 and err <= 1e-5, err
    rows = [[(e.pair_id, e.label, e.tokens_a, e.tokens_b, round(e.prob_a, 5)) for e in Ledger(d, readonly=True).entries()]
            for d in (tmp_path / "one", tmp_path / "two")]
    assert rows[0] == rows[1] and len(rows[0]) == 12  # same pairs, same labels: each paid once
    assert two["final_eval"]["n"] == one["final_eval"]["n"] == 4  # rank 0 evaluated
    losses = [[r["loss"] for r in read_metrics(tmp_path / d, "train")] for d in ("one", "two")]
    assert len(losses[1]) == 3 and max(abs(a - b) for a, b in zip(*losses)) <= 1e-5
    assert min(r["grad_norm"] for r in read_metrics(tmp_path / "two", "train")) > 0  # it learned
    # `duel export` reads the two-process checkpoint in this one process (Orbax reshards)
    learner, meta = restored_learner(tmp_path / "two")
    assert meta["checkpoint_step"] == 3 and learner.processes == 1
    assert all(np.array_equal(np.asarray(a), b) for a, b in zip(jax.tree.leaves(learner.state.params), seen["params"]))


def test_learner_config_keys():
    from duel.config import ConfigError, from_dict, load_config

    c = load_config(None, ["learner.sharding=fsdp", "learner.min_shard_size=0"])
    assert (c.learner.sharding, c.learner.min_shard_size, c.learner.processes) == ("fsdp", 0, 1)
    assert load_config(None).learner.sharding == "none" and load_config(None).learner.min_shard_size == 2**16
    with pytest.raises(ConfigError, match="'learner.sharding' expected one of 'none', 'dp', 'fsdp', got 'tp'"):
        from_dict({"learner": {"sharding": "tp"}})
    with pytest.raises(ConfigError, match="'learner.min_shard_size' expected a value >= 0"):
        from_dict({"learner": {"min_shard_size": -1}})
    with pytest.raises(ConfigError, match="'learner.processes' is 2, which needs 'learner.sharding' dp or fsdp"):
        from_dict({"learner": {"processes": 2}})
    # whole learner GPUs are known before any device is seen: 2 processes x 3 GPUs = 6 devices
    with pytest.raises(ConfigError, match=r"'prompts_per_step' \(8\) must be a multiple of the learner's "
                                          r"device count 6 \(learner.processes=2 x resources.learner_gpus=3\)"):
        from_dict({"learner": {"sharding": "dp", "processes": 2}, "resources": {"learner_gpus": 3}})
    from_dict({"learner": {"sharding": "dp", "processes": 2}, "resources": {"learner_gpus": 2}})  # 8 / 4


if __name__ == "__main__":
    sys.path.insert(0, os.getcwd())
    print(json.dumps(_worker(sys.argv[1])))

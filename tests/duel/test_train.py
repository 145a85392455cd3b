"""The policy train step (gradients, accumulation, learning), SFT, reference log-probs and schedules."""

import dataclasses
import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from duel.models import ModelConfig, build_model
from duel.records import CandidateBatch, LabeledBatch, PairBatch, PromptBatch
from duel.reference import ReferenceSchedule, init_reference, update_reference
from duel.train import (
    TrainConfig,
    init_train_state,
    model_from_state,
    pair_loss,
    pairs_from_labeled,
    sft_train,
    split_model,
    train_step,
    with_reference,
)
from tests.helpers.pairs import pair_tensors

V, B, TP, N = 61, 4, 5, 4
# Adam eps = 1e-3 keeps the first update close to linear in the gradient (with 1e-8 it is
# lr * sign(g), which turns rounding noise in near-zero gradients into whole steps)
CFG = TrainConfig(loss="dpo", beta=1.0, label_smoothing=0.1, lr=1e-2, clip_norm=10.0, eps=1e-3)


@functools.cache
def tiny():
    c = ModelConfig(family="llama", vocab_size=V, hidden_size=16, num_layers=2, num_heads=4, num_kv_heads=2,
                    head_dim=4, intermediate_size=32, max_position_embeddings=64)
    return build_model(c, seed=1)


def pairs(seed=0, b=B):
    """b pairs with left-padded prompts, ragged responses, soft labels and one masked pair."""
    return pair_tensors(seed, b, V, TP, N, soft=True)


def copy_state(state):
    return jax.tree.map(lambda x: jnp.array(x, copy=True), state)


# ---------------------------------------------------------------- gradients


@pytest.mark.slow
def test_dpo_gradient_matches_finite_differences():
    graphdef, params, rest = split_model(tiny())
    batch = pairs()
    norm = jnp.sum(batch.weight)
    value_and_grad = jax.jit(jax.value_and_grad(lambda p: pair_loss(p, graphdef, rest, batch, CFG, norm)[0]))
    _, grad = value_and_grad(params)

    def fd(direction, eps):
        plus = jax.tree.map(lambda a, d: a + eps * d, params, direction)
        minus = jax.tree.map(lambda a, d: a - eps * d, params, direction)
        return (float(value_and_grad(plus)[0]) - float(value_and_grad(minus)[0])) / (2 * eps)

    # along the gradient: the directional derivative is |g|
    gnorm = float(optax.global_norm(grad))
    assert gnorm > 0.1
    np.testing.assert_allclose(fd(jax.tree.map(lambda g: g / gnorm, grad), 1e-3), gnorm, rtol=1e-4)
    # the three largest single coordinates of the gradient
    leaves, treedef = jax.tree.flatten(grad)
    top = sorted(((float(np.abs(g).max()), k) for k, g in enumerate(leaves)), reverse=True)[:3]
    for _, k in top:
        i = np.unravel_index(np.argmax(np.abs(np.asarray(leaves[k]))), leaves[k].shape)
        onehot = [jnp.zeros_like(g).at[i].set(1.0) if j == k else jnp.zeros_like(g) for j, g in enumerate(leaves)]
        np.testing.assert_allclose(fd(jax.tree.unflatten(treedef, onehot), 2e-3), float(leaves[k][i]), rtol=2e-3)


# ---------------------------------------------------------------- learning


def test_steps_on_a_fixed_batch_lower_dpo_loss_and_raise_margin():
    state = init_train_state(tiny(), CFG)
    batch = pairs()
    losses, margins = [], []
    for _ in range(6):
        state, m = train_step(state, batch, CFG)
        losses.append(float(m["loss"]))
        margins.append(float(m["margin"]))
    # metrics are taken before each update: step 0 has the initial loss
    assert losses[-1] < losses[0] - 0.1, losses
    assert margins[-1] > margins[0] + 0.3, margins
    assert all(b < a for a, b in itertools.pairwise(losses)), losses
    assert int(state.step) == 6
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state.params))


@pytest.mark.slow
def test_micro_batch_accumulation_equals_one_big_batch():
    """micro_batches=2 (with remat and the chunked vocabulary projection) == one batch of 4."""
    batch = pairs(seed=1)
    big, m_big = train_step(init_train_state(tiny(), CFG), batch, CFG)
    cfg2 = dataclasses.replace(CFG, micro_batches=2, remat=True, vocab_chunk=3)
    acc, m_acc = train_step(init_train_state(tiny(), cfg2), batch, cfg2)
    for k in ("loss", "margin", "accuracy", "kl", "grad_norm"):
        np.testing.assert_allclose(float(m_acc[k]), float(m_big[k]), rtol=1e-5, atol=1e-7, err_msg=k)
    for a, b in zip(jax.tree.leaves(big.params), jax.tree.leaves(acc.params)):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), atol=1e-6)
    with pytest.raises(ValueError, match="micro-batches"):
        train_step(init_train_state(tiny(), dataclasses.replace(CFG, micro_batches=3)), batch,
                   dataclasses.replace(CFG, micro_batches=3))


@pytest.mark.slow
def test_bfloat16_compute_keeps_float32_masters_and_close_loss():
    batch = pairs(seed=2)
    _, m32 = train_step(init_train_state(tiny(), CFG), batch, CFG)
    cfg = dataclasses.replace(CFG, compute_dtype="bfloat16")
    state, m16 = train_step(init_train_state(tiny(), cfg), batch, cfg)
    assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(state.params))
    np.testing.assert_allclose(float(m16["loss"]), float(m32["loss"]), rtol=0.05)
    assert model_from_state(state, jnp.bfloat16).embed[...].dtype == jnp.bfloat16


# ---------------------------------------------------------------- reference log-probs, xpo, records


def test_with_reference_equals_response_logprob_sums():
    state = init_train_state(tiny(), CFG)
    batch = pairs(seed=3)
    out = with_reference(batch, state, state.params, CFG)
    # sums over 2..4 tokens of log-probs near log(1/61) = -4.1 under a random init
    n_c, n_r = batch.chosen_mask.sum(1), batch.rejected_mask.sum(1)
    assert np.all(np.abs(np.asarray(out.ref_chosen) / n_c + np.log(V)) < 0.5)
    assert np.all(np.abs(np.asarray(out.ref_rejected) / n_r + np.log(V)) < 0.5)
    # the policy as its own reference: the train step's own log-probs agree, so DPO (even
    # label-smoothed) starts at log 2 with zero margin and zero KL
    _, m = train_step(state, out, CFG)
    np.testing.assert_allclose(float(m["loss"]), np.log(2.0), rtol=1e-5)
    assert abs(float(m["margin"])) < 1e-5 and abs(float(m["kl"])) < 1e-5


@pytest.mark.slow
def test_xpo_bonus_from_separate_sample_equals_flag():
    graphdef, params, rest = split_model(tiny())
    batch = pairs(seed=4)
    cfg = dataclasses.replace(CFG, loss="xpo", xpo_alpha=0.5)
    flag = batch.replace(ref_sample_is_chosen=np.array([1, 0, 1, 0], np.float32))
    sep = batch.replace(ref_sample_ids=np.where(flag.ref_sample_is_chosen[:, None] > 0, batch.chosen_ids, batch.rejected_ids),
                        ref_sample_mask=np.where(flag.ref_sample_is_chosen[:, None] > 0, batch.chosen_mask, batch.rejected_mask))


    @jax.jit
    def losses(flag, sep, plain):
        return [pair_loss(params, graphdef, rest, b, c, jnp.sum(b.weight)) for b, c in ((flag, cfg), (sep, cfg), (plain, CFG))]

    (l_flag, m_flag), (l_sep, _), (l_dpo, _) = losses(flag, sep, batch)
    np.testing.assert_allclose(float(l_sep), float(l_flag), rtol=1e-6)
    np.testing.assert_allclose(float(l_flag) - float(l_dpo), float(m_flag["xpo_bonus"]), rtol=1e-5)
    assert float(m_flag["xpo_bonus"]) < 0  # alpha * log pi(y~) with alpha > 0


def test_pairs_from_labeled_orients_by_label_and_masks_identical():
    P, M, n = 3, 3, 2
    tokens = np.arange(P * M * n, dtype=np.int32).reshape(P, M, n)
    ref = np.arange(P * M * n, dtype=np.float32).reshape(P, M, n) * -0.1
    mask = np.ones((P, M, n), np.int32)
    mask[0, 2, 1] = 0
    prompts = PromptBatch(["a", "b", "c"], ["a", "b", "c"], np.ones((P, 2), np.int32), np.ones((P, 2), np.int32))
    cand = CandidateBatch(prompts, tokens, mask, ref, ref, np.zeros((P, M, 1)), [[""] * M] * P, version=0)
    pb = PairBatch(cand, np.array([[0, 2], [1, 0], [2, 2]]), np.array([False, False, True]), np.zeros(P, bool), "passive")
    lb = LabeledBatch(pb, prob_a=np.array([0.8, 0.3, 0.5], np.float32), label=np.array([0, 1, 1], np.int8))
    t = pairs_from_labeled(lb)
    np.testing.assert_array_equal(t.chosen_ids, tokens[[0, 1, 2], [2, 1, 2]])
    np.testing.assert_array_equal(t.rejected_ids, tokens[[0, 1, 2], [0, 0, 2]])
    np.testing.assert_allclose(t.prob, [0.2, 0.3, 0.5])
    np.testing.assert_array_equal(t.weight, [1, 1, 0])
    np.testing.assert_allclose(t.ref_chosen[0], ref[0, 2, 0])  # the masked token is not summed
    np.testing.assert_allclose(t.ref_rejected[1], ref[1, 0].sum())
    np.testing.assert_array_equal(pairs_from_labeled(lb, soft=False).prob, [1, 1, 1])


# ---------------------------------------------------------------- SFT


@pytest.mark.slow
def test_sft_train_learns_the_responses():
    rng = np.random.default_rng(5)
    examples = [(rng.integers(1, V, 3).tolist(), rng.integers(1, V, 3).tolist()) for _ in range(4)]
    model = build_model(tiny().config, seed=2)
    before = model.embed[...].copy()
    model, losses = sft_train(model, examples, 25, batch_size=4, learning_rate=3e-2)
    assert losses[0] > 3.5  # about log(61) = 4.1 at random init
    assert losses[-1] < 0.5 * losses[0], losses
    assert not np.allclose(np.asarray(model.embed[...]), np.asarray(before))  # updated in place
    with pytest.raises(ValueError, match="tokenizer"):
        sft_train(model, [{"prompt": "hi", "response": "there"}], 1)


# ---------------------------------------------------------------- reference schedules


def policy_at(step):
    """A stand-in parameter pytree for the policy after `step` updates."""
    return {"w": jnp.full((2, 3), float(step)), "b": {"c": jnp.full((4,), -float(step))}}


def run_schedule(schedule, steps):
    ref = init_reference(policy_at(0))
    history = []
    update = jax.jit(update_reference, static_argnums=0)
    for step in range(1, steps + 1):
        ref = update(schedule, ref, policy_at(step), step)
        history.append((float(ref.params["w"][0, 0]), float(ref.params["b"]["c"][0]), int(ref.refreshed_at)))
    return ref, history


def test_fixed_reference_stays_the_initial_policy():
    _, hist = run_schedule(ReferenceSchedule("fixed"), 5)
    assert hist == [(0.0, 0.0, 0)] * 5


def test_behavior_reference_equals_the_published_weights():
    ref, hist = run_schedule(ReferenceSchedule("behavior"), 4)
    assert hist == [(s, -s, s) for s in (1, 2, 3, 4)]
    published = policy_at(4)
    for a, b in zip(jax.tree.leaves(ref.params), jax.tree.leaves(published)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_ema_reference_moves_by_tau():
    tau = 0.25
    _, hist = run_schedule(ReferenceSchedule("ema", tau=tau), 4)
    want = 0.0
    for step, (w, c, _) in zip(range(1, 5), hist):
        want = (1 - tau) * want + tau * step
        np.testing.assert_allclose(w, want, rtol=1e-6)
        np.testing.assert_allclose(c, -want, rtol=1e-6)


def test_stepwise_reference_refreshes_every_k_steps():
    _, hist = run_schedule(ReferenceSchedule("stepwise", every=3), 7)
    assert [h[0] for h in hist] == [0, 0, 3, 3, 3, 6, 6]
    assert [h[2] for h in hist] == [0, 0, 3, 3, 3, 6, 6]


def test_reference_schedule_on_train_state_params_and_bad_names():
    state = init_train_state(tiny(), CFG)
    ref = init_reference(state.params)
    new = update_reference(ReferenceSchedule("ema", tau=0.5), ref, jax.tree.map(lambda x: x + 2.0, state.params), 1)
    for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(state.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b) + 1.0, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="valid schedules: fixed, behavior, ema, stepwise"):
        ReferenceSchedule("polyak")
    with pytest.raises(ValueError, match="valid kinds"):
        TrainConfig(loss="orpo")


# ---------------------------------------------------------------- micro-batches on a device mesh

NDEV = 4
COLLECTIVES = ("all-gather", "all-to-all", "collective-permute")  # what moving batch rows costs
RESHARD_WARNING = "Involuntary full rematerialization"
CONTROL_MARK = "--- control: contiguous micro-batch blocks ---"


def _block_split(x, m):
    """The old split: micro-batch i = rows [i B/m, (i+1) B/m) (the negative control)."""
    return x.reshape(m, x.shape[0] // m, *x.shape[1:])


def _mesh_worker() -> dict:
    """Run as a script with NDEV forced host devices: HLO collective counts and numbers of the
    dp / fsdp step with micro_batches 1 and 2, then the block split as a control (after a marker
    on stderr, so the parent can tell whose XLA warnings are whose)."""
    import os
    import re
    import sys

    import duel.train as train
    from duel.sharding import make_mesh, shard_batch, shard_train_state, sharded_train_step

    assert jax.device_count() == NDEV, jax.devices()
    batch = pairs(seed=3, b=8)

    def compiled(strategy, m):
        cfg = dataclasses.replace(CFG, micro_batches=m)
        mesh = make_mesh(strategy)
        state = shard_train_state(init_train_state(tiny(), cfg), mesh, strategy)
        step = sharded_train_step(state, batch, mesh, strategy, cfg)
        sb = shard_batch(batch, mesh, strategy)
        hlo = step.lower(state, sb).compile().as_text()
        counts = {op: len(re.findall(rf"\s{op}(?:-start)?\(", hlo)) for op in COLLECTIVES}
        state, metrics = step(state, sb)
        return counts, float(metrics["loss"]), [np.asarray(x) for x in jax.tree.leaves(state.params)]

    ref_state, ref_m = train_step(init_train_state(tiny(), CFG), batch, CFG)
    ref = [np.asarray(x) for x in jax.tree.leaves(ref_state.params)]
    out = {}
    for strategy in ("dp", "fsdp"):
        c1, _, _ = compiled(strategy, 1)
        c2, loss, params = compiled(strategy, 2)
        out[strategy] = {"mb1": c1, "mb2": c2, "loss_err": abs(loss - float(ref_m["loss"])),
                         "param_err": max(float(np.max(np.abs(a - b))) for a, b in zip(params, ref))}
    sys.stderr.flush()
    os.write(2, f"\n{CONTROL_MARK}\n".encode())
    train.split_micro_batches = _block_split
    jax.clear_caches()  # train_step is traced once per shape; trace it again with the block split
    for strategy in ("dp", "fsdp"):
        out[strategy]["block"] = compiled(strategy, 2)[0]
    return out


@pytest.fixture(scope="module")
def mesh_result():
    from tests.helpers.hang import HANG_TIMEOUT_S
    import json
    import os
    import subprocess
    import sys

    # no persistent compilation cache: a program loaded from it is not compiled, so XLA's warning
    # would never be printed and both detectors below would pass vacuously
    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={NDEV}", JAX_PLATFORMS="cpu",
               TF_CPP_MIN_LOG_LEVEL="0", JAX_ENABLE_COMPILATION_CACHE="false")
    proc = subprocess.run([sys.executable, __file__], check=False, env=env, capture_output=True, text=True, timeout=HANG_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ours, _, control = proc.stderr.partition(CONTROL_MARK)
    return json.loads(proc.stdout.strip().splitlines()[-1]), ours, control


@pytest.mark.slow
def test_micro_batches_keep_each_devices_rows_local_on_a_mesh(mesh_result):
    """dp / fsdp on 4 devices, micro_batches=2: no resharding of the batch (no XLA warning, no
    more row-moving collectives than with one micro-batch), same update as one device.

    The control (contiguous blocks: micro-batch 0 = rows 0..3 = devices 0 and 1) shows both
    detectors fire: XLA warns and gathers the batch."""
    r, ours, control = mesh_result
    assert RESHARD_WARNING not in ours, ours[-2000:]
    assert RESHARD_WARNING in control  # the detector works
    for strategy in ("dp", "fsdp"):
        s = r[strategy]
        for op in COLLECTIVES:
            assert s["mb2"][op] <= s["mb1"][op], (strategy, op, s)
        assert s["block"]["all-gather"] > s["mb1"]["all-gather"], (strategy, s)  # the batch gathered
        # micro-batch sums and the mesh's all-reduce reorder float adds: equal up to rounding
        assert s["loss_err"] <= 1e-6 and s["param_err"] <= 1e-5, (strategy, s)


if __name__ == "__main__":
    import json

    print(json.dumps(_mesh_worker()))


def test_pairs_from_labeled_takes_the_reference_sample_from_the_candidates():
    # which candidate came from the reference is data (CandidateBatch.from_reference), not the
    # "last M // 2" index convention: here the first candidate of each prompt is the reference's
    P, M, n = 3, 4, 2
    tokens = np.arange(P * M * n, dtype=np.int32).reshape(P, M, n)
    lp = np.zeros((P, M, n), np.float32)
    mask = np.ones((P, M, n), np.int32)
    prompts = PromptBatch(["a", "b", "c"], ["a", "b", "c"], np.ones((P, 2), np.int32), np.ones((P, 2), np.int32))
    from_ref = np.zeros((P, M), bool)
    from_ref[:, 0] = True
    cand = CandidateBatch(prompts, tokens, mask, lp, lp, np.zeros((P, M, 1)), [[""] * M] * P, version=0,
                          from_reference=from_ref)
    pb = PairBatch(cand, np.array([[0, 3], [3, 0], [1, 2]]), np.zeros(P, bool), np.zeros(P, bool), "xpo")
    lb = LabeledBatch(pb, prob_a=np.full(P, 0.5, np.float32), label=np.array([1, 1, 0], np.int8))
    # chosen: 0 (reference), 3 (policy), 2 (policy)
    np.testing.assert_array_equal(pairs_from_labeled(lb).ref_sample_is_chosen, [1, 0, 0])
    lb2 = LabeledBatch(pb, prob_a=lb.prob_a, label=np.array([0, 0, 0], np.int8))
    np.testing.assert_array_equal(pairs_from_labeled(lb2).ref_sample_is_chosen, [0, 1, 0])
    # every candidate from the policy (the default): no reference sample in the batch
    plain = CandidateBatch(prompts, tokens, mask, lp, lp, np.zeros((P, M, 1)), [[""] * M] * P, version=0)
    assert not plain.from_reference.any() and plain.from_reference.shape == (P, M)
    pb_plain = PairBatch(plain, pb.pairs, pb.identical, pb.synthetic, "passive")
    assert pairs_from_labeled(LabeledBatch(pb_plain, lb.prob_a, lb.label)).ref_sample_is_chosen is None
    with pytest.raises(ValueError, match="from_reference has shape"):
        CandidateBatch(prompts, tokens, mask, lp, lp, np.zeros((P, M, 1)), [[""] * M] * P, version=0,
                       from_reference=np.zeros((P, M + 1), bool))

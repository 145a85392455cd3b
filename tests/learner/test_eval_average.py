"""eval.ema: the learner keeps a debiased Polyak average of the policy for eval and export.

The average follows the formula over every optimizer update (replayed ones included), training
never reads it, a resumed learner continues it bit for bit, eval reads it, and `duel export
--average` writes it.
"""

import os

import jax
import numpy as np
import pytest

from tests.learner.test_sharded_learner import labeled_batch

DECAY = 0.8


def _learner(root, model, name, **over):
    from duel.config import save_config
    from learner.learner import Learner
    from tests.helpers.tiny import tiny_config

    cfg = tiny_config(model, **{"optim.lr": 1e-2, "replay.updates": 2, **over})
    os.makedirs(os.path.join(root, name), exist_ok=True)
    save_config(cfg, os.path.join(root, name, "config.yaml"))
    return Learner(cfg, model, os.path.join(root, name))


def _run(lrn, steps):
    for t in steps:
        lb = labeled_batch(t, lrn.model_config.vocab_size, lrn.feature_dim)
        pr = lb.pairs.candidates.prompts
        pad = lrn.replay.widths()[0] - pr.input_ids.shape[1]  # the run's prompt width (left pad)
        pr.input_ids = np.pad(pr.input_ids, ((0, 0), (pad, 0)))
        pr.attention_mask = np.pad(pr.attention_mask, ((0, 0), (pad, 0)))
        lrn.update(lb, t)


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(jax.device_get(tree))]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from tests.helpers.tiny import tiny_model_dir

    return tiny_model_dir(str(tmp_path_factory.mktemp("policy")), hidden=16, layers=2)


def test_average_follows_the_debiased_ema_over_every_update(tmp_path, model):
    lrn = _learner(tmp_path, model, "avg", **{"eval.ema": DECAY})
    seen = []  # the policy after each optimizer update, in order
    step = lrn._train_step

    def recording(state, batch):
        state, m = step(state, batch)
        seen.append(_leaves(state.params))
        return state, m

    lrn._train_step = recording
    _run(lrn, range(3))
    assert len(seen) == 3 * (1 + 2)  # one update per step and two replayed ones
    avg = [p.astype(np.float64) for p in seen[0]]  # the first update: weight 1
    for k, params in enumerate(seen[1:], start=2):
        w = (1 - DECAY) / (1 - DECAY ** k)
        avg = [a + w * (p - a) for a, p in zip(avg, params)]
    got = _leaves(lrn.average)
    assert max(float(np.abs(g - a).max()) for g, a in zip(got, avg)) <= 1e-6
    # it is an average, not the last policy
    assert max(float(np.abs(g - p).max()) for g, p in zip(got, seen[-1])) > 1e-4


def test_training_never_reads_the_average(tmp_path, model):
    plain = _learner(tmp_path, model, "plain")
    avg = _learner(tmp_path, model, "avg", **{"eval.ema": DECAY})
    assert plain.average is None
    _run(plain, range(3))
    _run(avg, range(3))
    a, b = _leaves(plain._tree()), _leaves({k: v for k, v in avg._tree().items() if k != "average"})
    assert len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_resume_continues_the_average_bit_for_bit(tmp_path, model):
    import shutil

    straight = _learner(tmp_path, model, "resume", **{"eval.ema": DECAY})
    _run(straight, range(2))
    straight.save(2, {})
    shutil.copytree(tmp_path / "resume", tmp_path / "resumed")
    _run(straight, [2])
    from learner.learner import Learner

    resumed = Learner(straight.cfg, model, str(tmp_path / "resumed"))
    assert resumed.restore()["checkpoint_step"] == 2
    _run(resumed, [2])
    assert all(np.array_equal(a, b) for a, b in zip(_leaves(straight.average), _leaves(resumed.average)))
    assert all(np.array_equal(a, b) for a, b in zip(_leaves(straight._tree()), _leaves(resumed._tree())))


def test_eval_and_export_read_the_average(tmp_path, model, monkeypatch):
    from duel.config import ConfigError
    from duel.models import load_pretrained
    from learner import evaluation
    from learner.offline import export_run

    lrn = _learner(tmp_path, model, "avg", **{"eval.ema": DECAY})
    _run(lrn, range(2))
    lrn.save(2, {})
    ids = np.array([[0, 0, 5, 6, 7, 8], [3, 4, 5, 6, 7, 9]], np.int32)
    mask = (ids != 0).astype(np.int32)
    want = np.asarray(lrn.policy_model(average=True)(ids, mask))
    assert np.abs(want - np.asarray(lrn.policy_model()(ids, mask))).max() > 1e-5  # they differ

    evaluated = []
    monkeypatch.setattr(evaluation.Evaluator, "evaluate", lambda self, m, step: evaluated.append(m) or {})
    lrn.evaluate(2)
    assert np.array_equal(np.asarray(evaluated[0](ids, mask)), want)

    out = export_run(tmp_path / "avg", tmp_path / "export", average=True)
    exported, _ = load_pretrained(str(out))
    assert np.abs(np.asarray(exported(ids, mask)) - want).max() <= 1e-5

    plain = _learner(tmp_path, model, "plain")
    with pytest.raises(ConfigError, match="eval.ema"):
        plain.policy_model(average=True)

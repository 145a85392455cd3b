"""replay.batch: each replayed update trains on that many pairs drawn from the run's paid labels
(default `prompts_per_step`); a replayed label is never a new query; bad sizes are clear errors."""

import numpy as np
import pytest

from tests.learner.test_eval_average import _learner, _run


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from tests.helpers.tiny import tiny_model_dir

    return tiny_model_dir(str(tmp_path_factory.mktemp("policy")), hidden=16, layers=2)


def _recorded(lrn) -> list[int]:
    """Rows of every batch the learner's optimizer updates see, in order."""
    rows = []
    step = lrn._train_step

    def recording(state, batch):
        rows.append(int(np.asarray(batch.weight).shape[0]))
        return step(state, batch)

    lrn._train_step = recording
    return rows


@pytest.mark.parametrize("batch, want", [(0, 4), (8, 8), (12, 12)])
def test_replayed_updates_draw_replay_batch_pairs(tmp_path, model, batch, want):
    lrn = _learner(tmp_path, model, f"b{batch}", **{"replay.batch": batch})
    rows = _recorded(lrn)
    _run(lrn, range(3))
    # per loop step: the fresh update on prompts_per_step (4) pairs, then 2 replayed updates
    assert rows == [4, want, want] * 3
    # 3 steps x 4 prompts, all oracle-labelled (labeled_batch: none synthetic): replays add none
    assert lrn.counters.queries == 12 and lrn.counters.step == 3
    assert lrn.replay.total == 12  # rows stored: each paid label once, however often replayed


def test_a_larger_replay_batch_changes_the_updates(tmp_path, model):
    """The rows drawn really reach the update: 4 and 12 replayed pairs give different policies."""
    import jax

    a = _learner(tmp_path, model, "a", **{"replay.batch": 4})
    b = _learner(tmp_path, model, "b", **{"replay.batch": 12})
    _run(a, range(2))
    _run(b, range(2))
    la, lb = (jax.tree.leaves(jax.device_get(x.state.params)) for x in (a, b))
    assert max(float(np.abs(np.asarray(x) - np.asarray(y)).max()) for x, y in zip(la, lb)) > 1e-6


def test_replay_batch_must_split_into_micro_batches():
    from duel.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"'replay.batch' is 6.*'optim.micro_batches' \(4\)"):
        load_config(None, ["task=demo", "prompts_per_step=16", "replay.updates=2", "replay.batch=6",
                           "optim.micro_batches=4"])
    # replay off: the field is not used, so it is not checked
    load_config(None, ["task=demo", "prompts_per_step=16", "replay.batch=6", "optim.micro_batches=4"])


def test_replay_batch_must_split_over_the_learners_devices():
    from duel.config import ConfigError, check_learner_devices, load_config

    cfg = load_config(None, ["task=demo", "prompts_per_step=8", "replay.updates=2", "replay.batch=6",
                             "learner.sharding=dp"])
    with pytest.raises(ConfigError, match=r"'replay.batch' \(6\) must be a multiple of the learner's device count 4"):
        check_learner_devices(cfg, 4, "run.yaml")
    check_learner_devices(cfg, 2, "run.yaml")  # 8 and 6 both split over 2

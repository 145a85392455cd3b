"""duel.replay.PairReplay: which rows are kept, ring order, uniform draws, exact round trip."""

import numpy as np
import pytest

from duel.replay import FIELDS, PairReplay
from duel.train import PairTensors


def pairs(n, start=0, tp=3, tn=2, weight=None):
    """n distinguishable rows: row i carries the value start + i in every field."""
    v = np.arange(start, start + n)
    col = lambda w: np.repeat(v[:, None], w, 1).astype(np.int32)  # noqa: E731
    return PairTensors(prompt_ids=col(tp), prompt_mask=col(tp), chosen_ids=col(tn), chosen_mask=col(tn),
                       rejected_ids=col(tn), rejected_mask=col(tn), ref_chosen=v.astype(np.float32),
                       ref_rejected=-v.astype(np.float32), prob=np.full(n, 0.7, np.float32),
                       weight=np.ones(n, np.float32) if weight is None else np.asarray(weight, np.float32))


def stored(r):
    return sorted(r.rows["ref_chosen"][: len(r)].astype(int).tolist())


def test_keeps_only_weighted_rows_and_the_newest_capacity():
    r = PairReplay(4)
    assert r.add(pairs(3, weight=[1, 0, 1])) == 2  # weight 0: identical, skipped or synthetic pairs
    assert stored(r) == [0, 2] and r.total == 2
    r.add(pairs(3, start=10))
    assert len(r) == 4 and r.total == 5
    assert stored(r) == [2, 10, 11, 12]  # row 0 (the oldest) was overwritten
    r.add(pairs(6, start=20))  # more than the capacity at once: the newest 4 survive
    assert stored(r) == [22, 23, 24, 25] and r.total == 11


def test_sample_is_uniform_over_stored_rows_with_weight_one():
    r = PairReplay(8)
    r.add(pairs(5))
    b = r.sample(np.random.default_rng(0), 20000)
    assert b.prompt_ids.shape == (20000, 3) and b.chosen_ids.shape == (20000, 2)
    np.testing.assert_array_equal(b.weight, 1.0)
    counts = np.bincount(b.ref_chosen.astype(int), minlength=5)
    np.testing.assert_allclose(counts / 20000, 0.2, atol=0.01)
    # every field of a drawn row comes from the same stored row
    np.testing.assert_array_equal(b.prompt_ids[:, 0], b.ref_chosen.astype(int))
    np.testing.assert_array_equal(b.ref_rejected, -b.ref_chosen)


def test_widths_are_fixed_by_allocate():
    r = PairReplay(4)
    r.allocate(3, 2)
    with pytest.raises(ValueError, match=r"widths \(prompt, response\) \(5, 2\)"):
        r.add(pairs(2, tp=5))


def test_state_dict_round_trip_samples_the_same():
    r = PairReplay(5)
    r.add(pairs(7))
    r2 = PairReplay(1)
    r2.load_state_dict(r.state_dict())
    assert (r2.capacity, len(r2), r2.head, r2.total) == (5, 5, r.head, 7)
    a, b = r.sample(np.random.default_rng(3), 9), r2.sample(np.random.default_rng(3), 9)
    for k in FIELDS:
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    r.add(pairs(1, start=100))
    r2.add(pairs(1, start=100))
    assert stored(r) == stored(r2)

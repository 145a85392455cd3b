"""learner.steps.RunCounters: what one update adds to the run's counters (invariant 1)."""

import numpy as np

from duel.records import CandidateBatch, LabeledBatch, PairBatch, PromptBatch
from learner.steps import RunCounters


def _labeled(synthetic, from_ledger):
    P, M, N = len(synthetic), 2, 1
    prompts = PromptBatch([f"p{i}" for i in range(P)], ["x"] * P, np.ones((P, 1), np.int32), np.ones((P, 1), np.int32))
    z = np.zeros((P, M, N), np.float32)
    cand = CandidateBatch(prompts, np.ones((P, M, N), np.int32), np.ones((P, M, N), np.int32), z, z,
                          np.zeros((P, M, 1), np.float32), [["a", "b"]] * P, version=0)
    pb = PairBatch(cand, np.tile([0, 1], (P, 1)), np.zeros(P, bool), np.asarray(synthetic, bool), "passive")
    return LabeledBatch(pb, np.full(P, 0.5, np.float32), np.ones(P, np.int8),
                        from_ledger=None if from_ledger is None else np.asarray(from_ledger, bool))


def test_after_counts_paid_synthetic_and_reused_once():
    c = RunCounters().after(_labeled([0, 0, 1, 0], None), 0)
    assert c == RunCounters(step=1, version=1, queries=3, synthetic=1, reused=0)
    # a label reused from the ledger was paid before the stop: a query, counted once, and reused
    c = c.after(_labeled([0, 1, 0, 0], [1, 0, 1, 0]), 1)
    assert c == RunCounters(step=2, version=2, queries=6, synthetic=2, reused=2)
    assert RunCounters.from_dict({**c.as_dict(), "position": 64}) == c  # a checkpoint's meta


def test_a_synthetic_row_dropped_as_unsure_is_no_label():
    lb = _labeled([1, 1, 0, 1], None)
    lb.prob_a[1] = np.nan  # mixed.unconfident: drop
    assert lb.synthetic_labels == 2 and lb.queries == 1
    assert RunCounters().after(lb, 0) == RunCounters(step=1, version=1, queries=1, synthetic=2, reused=0)

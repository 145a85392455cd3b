"""learner.labeling.synthetic_vs_gold: the ERM's synthetic labels scored against a gold reward."""

import numpy as np
import pytest

from duel.records import CandidateBatch, LabeledBatch, PairBatch, PromptBatch
from learner.labeling import synthetic_vs_gold


def _labeled(texts, pairs, synthetic, label):
    P, M = len(texts), len(texts[0])
    prompts = PromptBatch([f"p{i}" for i in range(P)], [f"x{i}" for i in range(P)],
                          np.ones((P, 1), np.int32), np.ones((P, 1), np.int32))
    z = np.zeros((P, M, 1), np.float32)
    cand = CandidateBatch(prompts, np.ones((P, M, 1), np.int32), np.ones((P, M, 1), np.int32), z, z, z, texts, version=0)
    pb = PairBatch(cand, np.asarray(pairs, np.int32), np.zeros(P, bool), np.asarray(synthetic, bool), "ee_ts")
    return LabeledBatch(pb, np.full(P, 0.5, np.float32), np.asarray(label, np.int8))


def gold(prompts, responses):  # the reward is the response's length; the prompt must be passed along
    assert all(p.startswith("x") for p in prompts)
    return [len(r) for r in responses]


def test_agreement_counts_synthetic_pairs_whose_label_has_the_higher_gold_reward():
    texts = [["aaa", "a", "aa"], ["b", "bbb", "bb"], ["cc", "cc", "c"], ["dd", "d", "ddd"], ["e", "ee", "eee"]]
    # label 1: the pair's first response is preferred, 0: the second
    # row 0, synthetic: "aaa" over "a", right;   row 1, synthetic: "b" over "bb", wrong
    # row 2, synthetic: "cc" vs "cc", a tie;     row 3, paid: not counted (its label is wrong)
    # row 4, synthetic: "eee" over "e", right
    out = synthetic_vs_gold(_labeled(texts, [[0, 1], [0, 2], [0, 1], [0, 1], [0, 2]],
                                     [1, 1, 1, 0, 1], [1, 1, 0, 1, 0]), gold)
    assert out["synthetic_gold_ties"] == pytest.approx(1 / 4)
    assert out["synthetic_gold_agree"] == pytest.approx(2 / 3)


def test_no_synthetic_pairs_no_numbers_and_all_ties_no_agreement():
    texts = [["a", "b"], ["c", "d"]]
    assert synthetic_vs_gold(_labeled(texts, [[0, 1]] * 2, [0, 0], [1, 1]), gold) == {}
    assert synthetic_vs_gold(_labeled(texts, [[0, 1]] * 2, [1, 1], [1, 0]), gold) == {"synthetic_gold_ties": 1.0}

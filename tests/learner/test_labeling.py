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
    # chosen: "aaa", "b", the second "cc", "eee"; all candidates of rows 0, 1, 2, 4; their best
    assert out["synthetic_gold_chosen"] == pytest.approx((3 + 1 + 2 + 3) / 4)
    assert out["synthetic_gold_mean"] == pytest.approx((6 + 6 + 5 + 6) / 12)
    assert out["synthetic_gold_best"] == pytest.approx((3 + 3 + 2 + 3) / 4)


def test_no_synthetic_pairs_no_numbers_and_all_ties_no_agreement():
    texts = [["a", "b"], ["c", "d"]]
    assert synthetic_vs_gold(_labeled(texts, [[0, 1]] * 2, [0, 0], [1, 1]), gold) == {}
    assert synthetic_vs_gold(_labeled(texts, [[0, 1]] * 2, [1, 1], [1, 0]), lambda p, r: [1] * len(r)) == {
        "synthetic_gold_ties": 1.0, "synthetic_gold_chosen": 1.0, "synthetic_gold_mean": 1.0, "synthetic_gold_best": 1.0}


def test_ensemble_vs_oracle_counts_agreement_on_oracle_rows_only():
    from learner.labeling import ensemble_vs_oracle

    texts = [["a", "b"]] * 6
    lb = _labeled(texts, [[0, 1]] * 6, [0, 0, 0, 0, 1, 0], [1, 0, 1, 0, 1, 1])
    # row 0: 0.9 and a preferred: agree, sure;  row 1: 0.8 but b preferred: disagree, sure
    # row 2: 0.6 and a preferred: agree, unsure; row 3: 0.3, b preferred: agree, unsure
    # row 4: synthetic (not an oracle row);      row 5: no prediction (NaN)
    lb.pairs.erm_prob = np.array([0.9, 0.8, 0.6, 0.3, 0.99, np.nan], np.float32)
    oracle_rows = ~np.asarray(lb.pairs.synthetic)
    assert ensemble_vs_oracle(lb, oracle_rows, 0.75) == {
        "erm_asked": 4.0, "erm_asked_agree": 3.0, "erm_asked_sure": 2.0, "erm_asked_sure_agree": 1.0}
    assert ensemble_vs_oracle(lb, np.zeros(6, bool), 0.75) == {}
    lb.pairs.erm_prob = None
    assert ensemble_vs_oracle(lb, oracle_rows, 0.75) == {}

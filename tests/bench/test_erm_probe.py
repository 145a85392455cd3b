"""bench/erm_probe.py: its metrics against hand counts, and the whole probe at tiny sizes (slow)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.erm_probe import (  # noqa: E402
    ERM_BATCH, all_pairs, auroc, ece, expected_bt_accuracy, gold_onehot, held_out_metrics,
    pair_accuracy, random_pairs, tie_stats,
)


def test_pair_accuracy_hand_count():
    delta = np.array([0.5, -1.0, 0.0, 2.0, -0.1])
    target = np.array([1, 0, 1, 0, 1])
    # right: 0.5>0 & a; -1<0 & b; 0.0 predicts b but a -> wrong; 2.0 predicts a but b -> wrong; wrong
    assert pair_accuracy(delta, target) == pytest.approx(2 / 5)
    with pytest.raises(ValueError, match="same non-empty"):
        pair_accuracy(delta, target[:3])


def test_expected_bt_accuracy_and_ece():
    delta = np.array([1.0, -1.0, 1.0])
    p = np.array([0.9, 0.2, 0.3])
    assert expected_bt_accuracy(delta, p) == pytest.approx((0.9 + 0.8 + 0.3) / 3)
    # bins: 0.05 -> bin 0 with true 0.25; 0.95 -> bin 9 with true 0.95 -> 0.5 * 0.2 + 0.5 * 0
    assert ece([0.05, 0.95], [0.25, 0.95]) == pytest.approx(0.1)


def test_auroc_matches_pair_count():
    rng = np.random.default_rng(0)
    score = rng.integers(0, 4, 40).astype(float)  # ties on purpose
    pos = rng.random(40) < 0.4
    s_p, s_n = score[pos], score[~pos]
    want = np.mean([(a > b) + 0.5 * (a == b) for a in s_p for b in s_n])
    assert auroc(score, pos) == pytest.approx(want)
    assert np.isnan(auroc(score, np.zeros(40, bool)))


def test_tie_stats_hand_count():
    gold = np.array([[5.0, 5.0, 2.7, 2.7],  # pairs: (0,1) same text; (2,3) distinct, tied gold
                     [1.0, 1.0, 1.0, 1.0]])  # all tied, distinct texts
    ids = np.array([[0, 0, 2, 3], [0, 1, 2, 3]])
    s = tie_stats(gold, ids)
    assert s["pairs_per_prompt"] == 6
    assert s["frac_pairs_identical_text"] == pytest.approx(1 / 12)
    assert s["frac_pairs_distinct_text_tied_gold"] == pytest.approx(7 / 12)
    assert s["frac_pairs_differ_gold"] == pytest.approx(4 / 12)
    assert s["frac_prompts_all_tied_gold"] == pytest.approx(0.5)
    assert s["random_pick_is_best"] == pytest.approx((2 / 4 + 4 / 4) / 2)
    assert s["frac_candidates_exact"] == pytest.approx(2 / 8)


def test_pairs_skip_identical_texts():
    ids = np.array([[0, 0, 0], [0, 1, 1]])
    rows, pairs = all_pairs(ids)
    assert rows.tolist() == [1, 1] and pairs.tolist() == [[0, 1], [0, 2]]
    rows, pairs = random_pairs(ids, np.random.default_rng(0))
    assert rows.tolist() == [1] and ids[1, pairs[0, 0]] != ids[1, pairs[0, 1]]


def test_gold_onehot_and_held_out_metrics():
    f = gold_onehot(["2+3=", "10+10="], [["5", "7", "x", "1"], ["20", "21", "35", "19"]])
    assert f.shape == (2, 4, 23)
    assert f[0, 0, 10] == 1 and f[0, 0, 22] == 1 and f[0, 1, 12] == 1 and f[0, 2, 21] == 1
    assert f[1, 2, 20] == 1  # +15 clipped to +10
    gold = np.array([[5.0, 2.4, 1.0, 0.0]])
    rows, pairs = all_pairs(np.array([[0, 1, 2, 3]]))
    # members agree with gold on every pair except one member flips (0, 1)
    r = np.array([[[3.0, 2.0, 1.0, 0.0]], [[1.0, 2.0, 0.5, 0.0]]])
    m = held_out_metrics(r, gold, rows, pairs, tau=1.0)
    # mean rewards [2, 2, .75, 0]: (0,1) delta 0 -> predicts b, wrong; the other 5 right
    assert m["acc_gold"] == pytest.approx(5 / 6)
    assert m["pairs"] == 6 and m["pairs_non_tie"] == 6
    assert m["top1"] == 1.0 and m["top1_regret"] == 0.0  # argmax of [2, 2, ...] is candidate 0
    assert m["signdis_wrong"] == pytest.approx(1.0)  # sign(0) matches neither member


def test_batch_is_the_learners():
    from learner.learner import ERM_BATCH as LEARNER_BATCH

    assert ERM_BATCH == LEARNER_BATCH


@pytest.mark.slow
def test_probe_runs_end_to_end(tmp_path, monkeypatch):
    from bench import erm_probe

    monkeypatch.setenv("DUEL_BENCH_RESULTS", str(tmp_path))
    feats = ("last", "mean", "gold_onehot", "p_pos", "hidden_probs", "sum_z", "hidden_probs+0.5emb_sum_e")
    out = erm_probe.main(["--check", "--features", ",".join(feats)])
    saved = json.loads((tmp_path / "erm_probe.json").read_text())
    assert saved["erm_config"]["batch"] == ERM_BATCH
    rows = [r for r in out["results"] if r["training"] == "learner"]
    assert {(r["feature"], r["n"]) for r in rows} == {(f, n) for f in feats for n in (16, 32)}
    assert all(0.0 <= r["acc_gold"] <= 1.0 and r["pairs"] == out["test_pairs"] for r in rows)


@pytest.mark.slow
def test_probe_encoder_option(tmp_path, monkeypatch):
    """--encoder NAME=PATH measures phi from that directory: the starting policy's own directory
    gives the generator's phi (`mean_nostop`) again, so the same ERM numbers."""
    from bench import erm_probe
    from duel.config import load_config
    from learner.setup import model_dir_for

    monkeypatch.setenv("DUEL_BENCH_RESULTS", str(tmp_path))
    policy = model_dir_for(load_config(str(REPO / "launch/configs/demo.yaml")))
    out = erm_probe.main(["--check", "--features", "mean_nostop", "--encoder", f"self={policy}",
                          "--out", "enc_probe"])
    assert (tmp_path / "enc_probe.json").is_file()
    assert out["encoders"]["self"]["path"] == policy
    rows = {(r["feature"], r["n"], r["training"]): r for r in out["results"] if r["n"]}
    assert {k for k in rows if k[0] == "enc:self"} == {("enc:self", n, t) for n in (16, 32)
                                                        for t in ("learner", "long")}
    for (feat, n, t), r in rows.items():
        if feat == "enc:self":
            assert r["acc_gold"] == pytest.approx(rows[("mean_nostop", n, t)]["acc_gold"], abs=0.02)

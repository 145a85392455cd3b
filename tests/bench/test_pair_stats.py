"""bench/pair_stats.py: the ERM-label agreement of a run against a hand count."""

import json
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench.pair_stats import erm_label_agree  # noqa: E402


def test_erm_label_agree_hand_count(tmp_path):
    rows = [{"kind": "train", "step": 0},  # burn-in: no ERM label
            {"kind": "train", "step": 1, "synthetic_gold_agree": 1.0},
            {"kind": "train", "step": 2, "synthetic_gold_agree": float("nan")},  # only gold ties
            {"kind": "eval", "expected_win_rate": 0.4},
            {"kind": "train", "step": 3, "synthetic_gold_agree": 0.5}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert math.isclose(erm_label_agree(tmp_path), 0.75)
    (tmp_path / "metrics.jsonl").write_text(json.dumps(rows[0]) + "\n")
    assert erm_label_agree(tmp_path) is None
    assert erm_label_agree(tmp_path / "missing") is None

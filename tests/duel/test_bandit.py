"""Bandit lab: regret accounting against a closed form, determinism, the CLI, and the
separation of strategies (ee_ts and bai_ts beat passive) with fixed seeds."""

import dataclasses

import numpy as np
import pytest

from duel.ensemble import ERMConfig
from duel.tasks.bandit import LAB_STRATEGIES, LabConfig, run_lab
from launch.bandit import main

TINY = LabConfig(rounds=8, num_arms=5, prompts_per_round=3, feature_dim=4, eval_contexts=32,
                 erm=ERMConfig(num_members=4, hidden=(8,), lr=3e-3))


def test_passive_regret_matches_closed_form():
    # linear utility, Gaussian arms: u ~ N(0, s^2) iid over arms, and passive duels two random
    # arms, so E[pair regret] = s * E[max of M standard normals] per round.
    cfg = dataclasses.replace(TINY, rounds=40, num_arms=6, prompts_per_round=16)
    res = run_lab(["passive"], seeds=4, config=cfg)["passive"]
    per_round = res["cumulative_regret"][:, -1].mean() / cfg.rounds
    rng = np.random.default_rng(0)
    expected = cfg.utility_scale * rng.normal(size=(200_000, cfg.num_arms)).max(1).mean()
    assert abs(per_round - expected) / expected < 0.06, (per_round, expected)
    assert res["cumulative_regret"].shape == (4, cfg.rounds)
    assert np.all(np.diff(res["cumulative_regret"], axis=1) >= 0)  # regret is never negative


def test_lab_is_deterministic_and_seeds_differ():
    a = run_lab(["ee_ts"], seeds=[0, 1], config=TINY)["ee_ts"]
    b = run_lab(["ee_ts"], seeds=[0, 1], config=TINY)["ee_ts"]
    np.testing.assert_array_equal(a["cumulative_regret"], b["cumulative_regret"])
    np.testing.assert_array_equal(a["final_simple_regret"], b["final_simple_regret"])
    assert not np.array_equal(a["cumulative_regret"][0], a["cumulative_regret"][1])


def test_lab_rejects_bad_input():
    with pytest.raises(ValueError, match="valid: " + ", ".join(LAB_STRATEGIES)):
        run_lab(["apl"], seeds=1, config=TINY)
    with pytest.raises(ValueError, match="valid: linear, mlp"):
        LabConfig(utility="cubic")
    with pytest.raises(SystemExit):
        main(["--strategies", "nope", "--seeds", "1", "--rounds", "2"])


def test_main_prints_table_and_writes_png(tmp_path, capsys):
    rc = main(["--strategies", "passive,bai_ts", "--seeds", "2", "--rounds", "6", "--arms", "4",
               "--dim", "4", "--members", "3", "--hidden", "8", "--utility", "mlp", "--out", str(tmp_path)])
    assert rc == 0
    png = tmp_path / "bandit.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    out = capsys.readouterr().out
    assert "passive" in out and "bai_ts" in out and "cum_regret" in out


def test_summary_says_less_regret_with_a_minus_sign():
    from duel.tasks.bandit import summary_rows

    def res(final):
        return {"cumulative_regret": np.array([[0.0, final], [0.0, final]]),
                "final_simple_regret": np.array([0.1, 0.1]), "seconds": 1.0}

    rows = {r["strategy"]: r for r in summary_rows({"passive": res(4.0), "ee_ts": res(1.0), "apl": res(5.0)})}
    assert rows["ee_ts"]["cum_regret vs passive"] == "-75%"  # a quarter of passive's regret
    assert rows["apl"]["cum_regret vs passive"] == "+25%"
    assert rows["passive"]["cum_regret vs passive"] == "+0%"


# The lab the acceptance numbers come from: the CLI defaults over 100 rounds.
SEPARATION = LabConfig(rounds=100)


@pytest.fixture(scope="module")
def separation():
    res = run_lab(["passive", "ee_ts", "bai_ts"], seeds=5, config=SEPARATION)
    cum = {s: float(r["cumulative_regret"][:, -1].mean()) for s, r in res.items()}
    simple = {s: float(r["final_simple_regret"].mean()) for s, r in res.items()}
    print("cumulative regret", cum, "simple regret", simple)
    return cum, simple


@pytest.mark.slow
def test_thompson_sampling_beats_passive(separation):
    cum, simple = separation
    assert cum["ee_ts"] <= 0.7 * cum["passive"], cum  # measured: 71% less
    assert cum["bai_ts"] <= 0.85 * cum["passive"], cum  # measured: 24% less
    assert simple["bai_ts"] < 0.85 * simple["passive"], simple  # measured: 0.108 vs 0.158
    assert simple["ee_ts"] < simple["passive"], simple


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "issue 4 asks bai_ts for >= 30% less cumulative regret than passive; measured 20-29% over "
    "every lab setting tried: its second response maximises Var_k[r(a) - r(j)], which grows "
    "with the reward gap, so it duels the best arm against far (poor) arms"
))
def test_bai_ts_cumulative_regret_30_percent_below_passive(separation):
    cum, _ = separation
    assert cum["bai_ts"] <= 0.7 * cum["passive"], cum

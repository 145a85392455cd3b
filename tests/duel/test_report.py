"""duel.report on small synthetic run directories: the printed numbers equal a direct computation."""

import json
import math

import numpy as np
import pytest
import yaml

from duel import report as rp

# Student-t 97.5% quantiles (statistics tables), so the test does not reuse the module's scipy call.
T975 = {2: 4.302652729911275, 1: 12.706204736174707}
BUDGET = 400

# strategy -> seed -> (eval queries, eval win rates); an extra 0.3/0.5 crossing pattern per seed.
CURVES = {
    "passive": {
        0: ([0, 100, 200, 300, 400], [0.10, 0.22, 0.31, 0.38, 0.45]),
        1: ([0, 100, 200, 300, 400], [0.12, 0.20, 0.28, 0.41, 0.52]),
        2: ([0, 100, 200, 300, 400], [0.08, 0.25, 0.33, 0.37, 0.44]),
    },
    "ee_ts": {
        0: ([0, 100, 200, 300, 400], [0.10, 0.35, 0.50, 0.56, 0.60]),
        1: ([0, 100, 200, 300, 400], [0.11, 0.31, 0.46, 0.55, 0.58]),
        2: ([0, 100, 200, 300, 400], [0.09, 0.28, 0.40, 0.45, 0.48]),  # never reaches 0.5
    },
}
SYNTHETIC = {"passive": 0, "ee_ts": 60}


def write_run(root, strategy, seed, queries, win_rates, budget=BUDGET, torn=False, name=None,
              **extra):
    d = root / (name or f"{strategy}-s{seed}")
    d.mkdir(parents=True)
    cfg = {"seed": seed, "task": "toy", "budget": budget, "explore": {"strategy": strategy},
           "run_dir": str(d), **extra}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    lines = []
    for step, (q, w) in enumerate(zip(queries, win_rates)):
        syn = SYNTHETIC[strategy] * q // max(queries[-1], 1)
        lines.append({"kind": "train", "step": step, "queries": q, "synthetic": syn, "loss": 0.1})
        lines.append({"kind": "eval", "step": step, "queries": q, "win_rate": w,
                      "win_rate_lo": w - 0.05, "win_rate_hi": w + 0.05, "n": 64})
    text = "\n".join(json.dumps(x) for x in lines) + "\n"
    (d / "metrics.jsonl").write_text(text + ('{"kind": "eval", "st' if torn else ""))
    return d


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "sweep"
    for strategy, seeds in CURVES.items():
        for seed, (q, w) in seeds.items():
            write_run(root, strategy, seed, q, w)
    return root


def first_crossing(q, w, target):
    """Direct reading of the definition, one eval at a time."""
    for i in range(len(q)):
        if w[i] >= target:
            if i == 0:
                return float(q[0])
            return q[i - 1] + (q[i] - q[i - 1]) * (target - w[i - 1]) / (w[i] - w[i - 1])
    return None


def mean_ci(x):
    x = np.asarray(x, float)
    half = T975[len(x) - 1] * x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.nan
    return x.mean(), x.mean() - half, x.mean() + half


def test_numbers_match_direct_computation(sweep, tmp_path):
    out = tmp_path / "out"
    summary = rp.report([sweep], out, targets=(0.3, 0.5, "passive"))
    s = summary["tasks"]["toy"]["strategies"]

    # final win rate and its t-interval over seeds
    for name, seeds in CURVES.items():
        finals = [w[-1] for _, w in seeds.values()]
        m, lo, hi = mean_ci(finals)
        assert s[name]["final"]["mean"] == pytest.approx(m)
        assert s[name]["final"]["lo"] == pytest.approx(lo)
        assert s[name]["final"]["hi"] == pytest.approx(hi)

    # AUC / budget: trapezoid area of the eval points
    for name, seeds in CURVES.items():
        aucs = [np.trapezoid(w, q) / BUDGET for q, w in seeds.values()]
        assert s[name]["auc"]["mean"] == pytest.approx(np.mean(aucs))
        assert s[name]["auc"]["hi"] == pytest.approx(mean_ci(aucs)[2])

    # queries to target, reached counts, ratio to passive
    for target in (0.3, 0.5):
        label = f"{target:.2f}"
        means = {}
        for name, seeds in CURVES.items():
            per_seed = [first_crossing(q, w, target) for q, w in seeds.values()]
            reached = [x for x in per_seed if x is not None]
            got = s[name]["targets"][label]
            assert got["reached"] == len(reached)
            for a, b in zip(got["per_seed"], per_seed):
                assert (a is None and b is None) or a == pytest.approx(b)
            means[name] = np.mean(reached)
            assert got["mean"] == pytest.approx(means[name])
            if len(reached) > 1:
                assert got["hi"] == pytest.approx(mean_ci(reached)[2])
        assert s["ee_ts"]["targets"][label]["ratio"] == pytest.approx(means["ee_ts"] / means["passive"])
    # hand-checked: passive seed 0 crosses 0.3 at 200 - 100 * 0.01 / 0.09
    assert s["passive"]["targets"]["0.30"]["per_seed"][0] == pytest.approx(200 - 100 / 9)
    assert s["ee_ts"]["targets"]["0.50"]["per_seed"][2] is None

    # target = passive's mean final win rate; ratio is over passive's queries at its final eval
    pf = np.mean([w[-1] for _, w in CURVES["passive"].values()])
    label = f"passive final ({pf:.3f})"
    ee = [first_crossing(q, w, pf) for q, w in CURVES["ee_ts"].values()]
    ee = [x for x in ee if x is not None]
    assert s["ee_ts"]["targets"][label]["mean"] == pytest.approx(np.mean(ee))
    assert s["ee_ts"]["targets"][label]["ratio"] == pytest.approx(np.mean(ee) / BUDGET)

    # the band at one grid point: interpolate each seed, t-interval over seeds
    grid = np.linspace(0, BUDGET, rp.GRID_POINTS)
    k = 37
    vals = [np.interp(grid[k], q, w) for q, w in CURVES["ee_ts"].values()]
    curve = s["ee_ts"]["curve"]
    m, lo, hi = mean_ci(vals)
    assert (curve["mean"][k], curve["lo"][k], curve["hi"][k]) == pytest.approx((m, lo, hi))

    # synthetic labels are kept apart from oracle queries
    assert s["ee_ts"]["synthetic"]["mean"] == SYNTHETIC["ee_ts"]
    assert s["ee_ts"]["oracle_queries"]["mean"] == BUDGET
    assert s["passive"]["synthetic"]["mean"] == 0

    # the outputs exist and carry the same numbers
    md = (out / "report.md").read_text()
    html = (out / "report.html").read_text()
    data = json.loads((out / "report.json").read_text())
    assert (out / "win_rate_toy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "win_rate_toy.png" in md and "data:image/png;base64," in html
    r = s["ee_ts"]["targets"]["0.30"]
    cell = f"{r['mean']:.0f} ± {r['hi'] - r['mean']:.0f} ×{r['ratio']:.2f}"
    assert cell in md and cell in html
    assert "(2/3 reached)" in md
    f = s["passive"]["final"]
    assert f"{f['mean']:.3f} [{f['lo']:.3f}, {f['hi']:.3f}]" in md
    assert data["tasks"]["toy"]["strategies"]["ee_ts"]["targets"]["0.50"]["per_seed"][2] is None
    assert data["tasks"]["toy"]["strategies"]["passive"]["auc"]["mean"] == pytest.approx(
        s["passive"]["auc"]["mean"])
    assert "Student-t" in md


def test_incomplete_run_is_reported_as_such(tmp_path):
    write_run(tmp_path / "a", "passive", 0, [0, 100], [0.1, 0.2], torn=True)
    write_run(tmp_path / "a", "passive", 1, [0, 100, 200, 300, 400], [0.1, 0.2, 0.3, 0.35, 0.4])
    summary = rp.report([tmp_path / "a"], tmp_path / "out", targets=(0.35,))
    p = summary["tasks"]["toy"]["strategies"]["passive"]
    assert p["complete"] == 1
    notes = p["runs"][0]["notes"]
    assert any("incomplete: 100 of 400" in n for n in notes)
    assert any("last line" in n for n in notes)
    # seed 0 stopped at 100 queries below 0.35: not reached; seed 1 reached at 300
    assert p["targets"]["0.35"]["per_seed"] == [None, 300.0]
    # the curve beyond 100 queries rests on one seed only: no band there
    assert p["curve"]["n"][50] == 1 and math.isnan(p["curve"]["lo"][50])
    md = (tmp_path / "out" / "report.md").read_text()
    assert "incomplete" in md and "1/2 reached" in md


def test_never_reached_and_bad_dirs(tmp_path, capsys):
    write_run(tmp_path / "s", "passive", 0, [0, 400], [0.1, 0.2])
    write_run(tmp_path / "s", "passive", 1, [0, 400], [0.1, 0.25])
    assert rp.main([str(tmp_path / "s"), "--targets", "0.9"]) == 0
    md = (tmp_path / "s" / "report" / "report.md").read_text()
    assert "not reached (0/2)" in md
    assert "not reached" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        rp.report([tmp_path / "nothing"], tmp_path / "o")
    assert rp.main([str(tmp_path / "s"), "--targets", "1.5"]) == 2
    assert "--targets: 1.5" in capsys.readouterr().err
    assert rp.main([str(tmp_path / "nothing")]) == 2
    assert "nothing: not a run directory" in capsys.readouterr().err
    bad = tmp_path / "bad" / "r"
    bad.mkdir(parents=True)
    (bad / "config.yaml").write_text("seed: 0\ntask: toy\nbudget: 10\n")
    with pytest.raises(ValueError, match="explore.strategy"):
        rp.report([bad], tmp_path / "o")


def test_starting_policy_is_the_point_at_zero_queries(tmp_path):
    d = write_run(tmp_path / "s", "passive", 0, [100, 200, 300, 400], [0.2, 0.3, 0.4, 0.5])
    rows = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    for r in rows:
        if r["kind"] == "eval":
            r["start_win_rate"] = 0.05
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    run = rp.load_run(d)
    assert run.queries.tolist() == [0, 100, 200, 300, 400]
    assert run.win_rate[0] == 0.05
    # 0.1 is crossed between the start (0.05 at 0) and the first eval (0.2 at 100)
    assert rp.queries_to_target(run.queries, run.win_rate, 0.1) == pytest.approx(100 * 0.05 / 0.15)
    assert rp.auc(run.queries, run.win_rate, BUDGET) == pytest.approx(
        np.trapezoid([0.05, 0.2, 0.3, 0.4, 0.5], [0, 100, 200, 300, 400]) / BUDGET)


def test_runs_that_differ_in_a_setting_form_separate_groups(tmp_path):
    q, w = [0, 200, 400], [0.1, 0.3, 0.5]
    for seed in (0, 1):
        write_run(tmp_path, "passive", seed, q, w, logging={"progress": seed == 0})
        for gamma in (0.0, 0.5):
            write_run(tmp_path, "ee_ts", seed, q, [x + gamma / 10 for x in w],
                      name=f"ee_ts-g{gamma}-s{seed}", mixed={"gamma": gamma},
                      logging={"progress": seed == 0})
    summary = rp.report([tmp_path], tmp_path / "out", targets=(0.4,))
    s = summary["tasks"]["toy"]
    assert s["varying"] == ["mixed.gamma"]  # logging.* never splits a group
    assert list(s["strategies"]) == ["passive mixed.gamma=None", "ee_ts mixed.gamma=0.0",
                                     "ee_ts mixed.gamma=0.5"]
    g = s["strategies"]["ee_ts mixed.gamma=0.5"]
    assert g["seeds"] == [0, 1] and g["final"]["mean"] == pytest.approx(0.55)
    # 0.4 is crossed at 200 + 200 * (0.4 - 0.35) / 0.2 = 250; passive at 300
    assert g["targets"]["0.40"]["ratio"] == pytest.approx(250 / 300)

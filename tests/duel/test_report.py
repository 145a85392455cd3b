"""duel.report on small synthetic run directories: the printed numbers equal a direct computation
(each statistic transcribed here from its definition, one seed or one resample at a time)."""

import json
import math

import numpy as np
import pytest
import yaml

from duel import report as rp
from duel import report_render
from duel import report_stats as st
from launch import report as report_cli

# Student-t 97.5% quantiles (statistics tables), so the test does not reuse the module's scipy call.
T975 = {2: 4.302652729911275, 1: 12.706204736174707}
BUDGET = 400
B = 2000  # the report's bootstrap resamples; k = round(0.025 * B) = 50

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
              extra_rows=None, half=0.05, **extra):
    """A run directory; `extra_rows[i]` is merged into the i-th eval row; half=None: no _lo/_hi."""
    d = root / (name or f"{strategy}-s{seed}")
    d.mkdir(parents=True)
    cfg = {"seed": seed, "task": "toy", "budget": budget, "explore": {"strategy": strategy},
           "run_dir": str(d), **extra}
    (d / "config.yaml").write_text(yaml.safe_dump(cfg))
    lines = []
    for step, (q, w) in enumerate(zip(queries, win_rates)):
        syn = SYNTHETIC.get(strategy, 0) * q // max(queries[-1], 1)
        lines.append({"kind": "train", "step": step, "queries": q, "synthetic": syn, "loss": 0.1})
        row = {"kind": "eval", "step": step, "queries": q, "win_rate": w, "n": 64}
        if half is not None:
            row.update(win_rate_lo=w - half, win_rate_hi=w + half)
        lines.append({**row, **(extra_rows[step] if extra_rows else {})})
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


@pytest.fixture
def no_plot(monkeypatch):
    """Tests that read no PNG skip drawing it (seconds per report on a loaded machine)."""
    def fake(task, s, metric, path):
        path.write_bytes(b"")
        return "not drawn"
    monkeypatch.setattr(report_render, "plot_task", fake)


# ----------------------------------------------------------------------------- transcriptions


def first_crossing(q, w, target):
    """Direct reading of the definition, one eval at a time."""
    for i in range(len(q)):
        if w[i] >= target - 1e-9:  # a seed mean summed in another order still reaches its own mean
            if i == 0:
                return float(q[0])
            return min(q[i], q[i - 1] + (q[i] - q[i - 1]) * (target - w[i - 1]) / (w[i] - w[i - 1]))
    return None


def mean_curve(curves, points=None):
    """Seed mean at every query count where some seed evaluated, over the seeds covering it."""
    points = sorted({x for q, _ in curves for x in q}) if points is None else points
    means = []
    for x in points:
        vals = [np.interp(x, q, w) for q, w in curves if q[0] <= x <= q[-1]]
        means.append(sum(vals) / len(vals))
    return points, means


def mean_ci(x):
    x = np.asarray(x, float)
    half = T975[len(x) - 1] * x.std(ddof=1) / np.sqrt(len(x)) if len(x) > 1 else np.nan
    return x.mean(), x.mean() - half, x.mean() + half


def ratio_of(a, b):
    if a is None and b is None:
        return math.nan
    if b is None:
        return 0.0
    if a is None:
        return math.inf
    if b == 0:
        return 1.0 if a == 0 else math.inf
    return a / b


def order_stat_interval(samples):
    """50th smallest and 50th largest of the defined samples (B = 2000 resamples)."""
    x = sorted(s for s in samples if not math.isnan(s))
    k = round(len(x) * 0.025)
    return x[k - 1], x[len(x) - k]


def boot_ratio(curves, passive, target, paired):
    """The bootstrap, one resample at a time: same RNG draws as documented in bootstrap_ratio."""
    rng = np.random.default_rng(0)
    idx = rng.integers(0, len(curves), (B, len(curves)))
    idx_p = idx if paired else rng.integers(0, len(passive), (B, len(passive)))
    grid = sorted({x for q, _ in curves for x in q})
    grid_p = sorted({x for q, _ in passive for x in q})
    out = []
    for b in range(B):
        mine = [curves[i] for i in idx[b]]
        base = [passive[i] for i in idx_p[b]]
        t = np.mean([w[-1] for _, w in base]) if target is None else target
        out.append(ratio_of(first_crossing(*mean_curve(mine, grid), t),
                            first_crossing(*mean_curve(base, grid_p), t)))
    return order_stat_interval(out)


# ----------------------------------------------------------------------------- tests


def test_numbers_match_direct_computation(sweep, tmp_path):
    out = tmp_path / "out"
    summary = rp.report([sweep], out, targets=(0.3, 0.5, "passive"))
    assert summary["metric"] == "win_rate"  # no run logs expected_win_rate
    s = summary["tasks"]["toy"]["strategies"]

    # final win rate and its t-interval over seeds
    for name, seeds in CURVES.items():
        finals = [w[-1] for _, w in seeds.values()]
        m, lo, hi = mean_ci(finals)
        assert (s[name]["final"]["mean"], s[name]["final"]["lo"], s[name]["final"]["hi"]) == \
            pytest.approx((m, lo, hi))

    # AUC / budget: trapezoid area of the eval points
    for name, seeds in CURVES.items():
        aucs = [np.trapezoid(w, q) / BUDGET for q, w in seeds.values()]
        assert s[name]["auc"]["mean"] == pytest.approx(np.mean(aucs))
        assert s[name]["auc"]["hi"] == pytest.approx(mean_ci(aucs)[2])

    # queries to target: per seed, and on the seed-mean curve; ratio to passive's seed-mean curve
    for target in (0.3, 0.5):
        label = f"{target:.2f}"
        on_mean = {}
        for name, seeds in CURVES.items():
            per_seed = [first_crossing(q, w, target) for q, w in seeds.values()]
            reached = [x for x in per_seed if x is not None]
            got = s[name]["targets"][label]
            assert got["reached"] == len(reached) and got["seeds"] == 3
            for a, b in zip(got["per_seed"], per_seed):
                assert (a is None and b is None) or a == pytest.approx(b)
            assert got["mean"] == pytest.approx(np.mean(reached))
            on_mean[name] = first_crossing(*mean_curve(list(seeds.values())), target)
            assert got["mean_curve"] == pytest.approx(on_mean[name])
        assert s["ee_ts"]["targets"][label]["ratio"] == pytest.approx(ratio_of(on_mean["ee_ts"], on_mean["passive"]))
    assert s["passive"]["targets"]["0.30"]["ratio"] == 1.0
    # passive's seed mean never reaches 0.5: ee_ts's ratio is 0 (only passive misses), passive's undefined
    assert s["ee_ts"]["targets"]["0.50"]["ratio"] == 0.0 and math.isnan(s["passive"]["targets"]["0.50"]["ratio"])
    # hand-checked: passive seed 0 crosses 0.3 at 200 - 100 * 0.01 / 0.09
    assert s["passive"]["targets"]["0.30"]["per_seed"][0] == pytest.approx(200 - 100 / 9)
    assert s["ee_ts"]["targets"]["0.50"]["per_seed"][2] is None
    # the seed mean of ee_ts at 200 is 0.4533, at 300 0.52: crosses 0.5 at 200 + 100 * 0.0467 / 0.0667
    assert s["ee_ts"]["targets"]["0.50"]["mean_curve"] == pytest.approx(200 + 100 * (0.5 - 1.36 / 3) / (1.56 / 3 - 1.36 / 3))

    # target = passive's final seed-mean; the ratio is to passive's own queries for it (400 here:
    # its seed mean first reaches its final value at the last eval), so passive shows ×1.00
    pf = np.mean([w[-1] for _, w in CURVES["passive"].values()])
    label = f"passive final ({pf:.3f})"
    ee = first_crossing(*mean_curve(list(CURVES["ee_ts"].values())), pf)
    assert s["passive"]["targets"][label]["mean_curve"] == pytest.approx(BUDGET)
    assert s["passive"]["targets"][label]["ratio"] == 1.0
    assert s["ee_ts"]["targets"][label]["ratio"] == pytest.approx(ee / BUDGET)

    # the band at one grid point: interpolate each seed, t-interval over seeds
    grid = np.linspace(0, BUDGET, rp.GRID_POINTS)
    k = 37
    vals = [np.interp(grid[k], q, w) for q, w in CURVES["ee_ts"].values()]
    curve = s["ee_ts"]["curve"]
    assert (curve["mean"][k], curve["lo"][k], curve["hi"][k]) == pytest.approx(mean_ci(vals))

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
    assert "Metric: `win_rate` (default: not every run logs expected_win_rate)" in md
    r = s["ee_ts"]["targets"]["0.30"]
    cell = f"{r['mean_curve']:.0f} ×{r['ratio']:.2f} [{r['ratio_lo']:.2f}, {r['ratio_hi']:.2f}] (3/3 seeds)"
    assert cell in md and cell in html
    assert "(2/3 seeds)" in md
    per_seed = " / ".join("–" if q is None else f"{q:.0f}" for q in s["ee_ts"]["targets"]["0.50"]["per_seed"])
    assert per_seed.endswith("/ –") and f"| {per_seed} |" in md
    f = s["passive"]["final"]
    assert f"{f['mean']:.3f} [{f['lo']:.3f}, {f['hi']:.3f}]" in md
    assert data["tasks"]["toy"]["strategies"]["ee_ts"]["targets"]["0.50"]["per_seed"][2] is None
    assert data["tasks"]["toy"]["strategies"]["passive"]["auc"]["mean"] == pytest.approx(
        s["passive"]["auc"]["mean"])
    assert "Student-t" in md and "t-band" in summary["tasks"]["toy"]["plot_title"]


def test_bootstrap_ratio_matches_a_resample_by_resample_transcription(sweep, tmp_path, no_plot):
    # paired: both strategies ran seeds 0, 1, 2, resampled with the same indices
    s = rp.report([sweep], tmp_path / "out", targets=(0.5, "passive"))["tasks"]["toy"]["strategies"]
    ee, passive = list(CURVES["ee_ts"].values()), list(CURVES["passive"].values())
    got = s["ee_ts"]["targets"]["0.50"]
    assert got["bootstrap"]["paired"] and got["bootstrap"]["resamples"] == B
    assert (got["ratio_lo"], got["ratio_hi"]) == pytest.approx(boot_ratio(ee, passive, 0.5, True))
    label = next(k for k in s["ee_ts"]["targets"] if k.startswith("passive final"))
    got = s["ee_ts"]["targets"][label]
    assert (got["ratio_lo"], got["ratio_hi"]) == pytest.approx(boot_ratio(ee, passive, None, True))
    assert got["ratio_lo"] < got["ratio"] < got["ratio_hi"] < 1
    # passive against itself, target recomputed per resample: always exactly 1
    assert (s["passive"]["targets"][label]["ratio_lo"], s["passive"]["targets"][label]["ratio_hi"]) == (1, 1)

    # unpaired: ee_ts ran other seeds (and evaluated at other query counts): two draws of one RNG
    root = tmp_path / "unpaired"
    for seed, (q, w) in CURVES["passive"].items():
        write_run(root, "passive", seed, q, w)
    other = {5: ([0, 150, 250, 400], [0.1, 0.45, 0.50, 0.58]), 6: ([0, 100, 400], [0.1, 0.3, 0.6])}
    for seed, (q, w) in other.items():
        write_run(root, "ee_ts", seed, q, w)
    s = rp.report([root], tmp_path / "out2", targets=(0.4,))["tasks"]["toy"]["strategies"]
    got = s["ee_ts"]["targets"]["0.40"]
    assert not got["bootstrap"]["paired"]
    assert got["mean_curve"] == pytest.approx(first_crossing(*mean_curve(list(other.values())), 0.4))
    assert (got["ratio_lo"], got["ratio_hi"]) == pytest.approx(
        boot_ratio(list(other.values()), passive, 0.4, False))


def test_seed_mean_curve_over_seeds_evaluated_at_different_queries():
    curves = [(np.array([0, 100, 200]), np.array([0.1, 0.3, 0.5])),
              (np.array([0, 150, 200, 300]), np.array([0.2, 0.2, 0.6, 0.7]))]
    q, m = st.seed_mean_curve(curves)
    tq, tm = mean_curve([(list(a), list(b)) for a, b in curves])
    assert q.tolist() == tq == [0, 100, 150, 200, 300]
    assert m == pytest.approx(tm)
    assert m[-1] == pytest.approx(0.7)  # only the second seed reaches 300
    assert st.ratio(None, None) != st.ratio(None, None)  # NaN: neither reaches
    assert (st.ratio(None, 10.0), st.ratio(5.0, None), st.ratio(0.0, 0.0)) == (math.inf, 0.0, 1.0)


def test_same_seed_differences_from_passive(sweep, tmp_path, no_plot):
    summary = rp.report([sweep], tmp_path / "out", targets=(0.3,))
    vs = summary["tasks"]["toy"]["strategies"]["ee_ts"]["vs_passive"]
    assert vs["seeds"] == [0, 1, 2]
    for key, f in (("auc", lambda q, w: np.trapezoid(w, q) / BUDGET), ("final", lambda q, w: w[-1])):
        d = [f(*CURVES["ee_ts"][k]) - f(*CURVES["passive"][k]) for k in (0, 1, 2)]
        m, lo, hi = mean_ci(d)
        assert (vs[key]["mean"], vs[key]["lo"], vs[key]["hi"]) == pytest.approx((m, lo, hi))
        assert vs[key]["per_seed"] == pytest.approx(d)
        idx = np.random.default_rng(0).integers(0, 3, (B, 3))
        means = [sum(d[i] for i in row) / 3 for row in idx]
        assert (vs[key]["boot_lo"], vs[key]["boot_hi"]) == pytest.approx(order_stat_interval(means))
        assert vs[key]["boot_lo"] <= m <= vs[key]["boot_hi"]
    a = vs["auc"]
    md = (tmp_path / "out" / "report.md").read_text()
    assert f"{a['mean']:+.3f} [{a['lo']:+.3f}, {a['hi']:+.3f}]" in md
    assert "vs_passive" not in summary["tasks"]["toy"]["strategies"]["passive"]
    # the acceptance checks do not depend on --targets (no 'passive' target asked for here)
    a = summary["tasks"]["toy"]["strategies"]["ee_ts"]["acceptance"]
    pf = np.mean([w[-1] for _, w in CURVES["passive"].values()])
    ee = first_crossing(*mean_curve(list(CURVES["ee_ts"].values())), pf)
    assert (a["target"], a["queries"], a["passive_queries"], a["ratio"]) == pytest.approx(
        (pf, ee, BUDGET, ee / BUDGET))
    assert a["ratio_lo"] < a["ratio"] < a["ratio_hi"]


def ewr_rows(values, start, half=0.02):
    return [{"expected_win_rate": v, "expected_win_rate_lo": v - half,
             "expected_win_rate_hi": v + half, "start_expected_win_rate": start} for v in values]


def test_default_metric_and_targets_derived_from_the_runs(tmp_path, capsys, no_plot):
    q = [100, 200, 300, 400]  # no eval at 0: the start comes from start_expected_win_rate
    exp = {"passive": {0: [0.30, 0.36, 0.40, 0.44], 1: [0.32, 0.35, 0.42, 0.46]},
           "ee_ts": {0: [0.40, 0.46, 0.50, 0.52], 1: [0.38, 0.47, 0.49, 0.53]}}
    start = {0: 0.25, 1: 0.27}
    for strategy, seeds in exp.items():
        for seed, v in seeds.items():
            write_run(tmp_path / "s", strategy, seed, q, [0.5] * 4,
                      extra_rows=ewr_rows(v, start[seed]))
    summary = rp.report([tmp_path / "s"], tmp_path / "out")
    assert summary["metric"] == "expected_win_rate"
    t = summary["tasks"]["toy"]
    lo, hi = np.mean(list(start.values())), np.mean([v[-1] for v in exp["passive"].values()])
    want = [lo + (hi - lo) * k / 4 for k in (1, 2, 3)]
    assert [x["value"] for x in t["targets"]] == pytest.approx(want + [hi])
    assert [x["kind"] for x in t["targets"]] == ["derived"] * 3 + ["passive"]
    assert t["derived_targets"]["start"] == pytest.approx(lo)
    label = f"{want[1]:.3f}"
    ee = [[0.0, *q], [start[0], *exp["ee_ts"][0]]], [[0.0, *q], [start[1], *exp["ee_ts"][1]]]
    assert t["strategies"]["ee_ts"]["targets"][label]["mean_curve"] == pytest.approx(
        first_crossing(*mean_curve(list(ee)), want[1]))
    assert (tmp_path / "out" / "expected_win_rate_toy.png").is_file()

    # --metric overrides; --targets overrides the derived ones
    assert report_cli.main([str(tmp_path / "s"), "--metric", "win_rate", "--targets", "0.4"]) == 0
    data = json.loads((tmp_path / "s" / "report" / "report.json").read_text())
    assert data["metric"] == "win_rate" and data["metric_reason"] == "given by --metric"
    assert [x["label"] for x in data["tasks"]["toy"]["targets"]] == ["0.40"]
    assert report_cli.main([str(tmp_path / "s"), "--metric", "nope"]) == 2
    assert "--metric nope: no eval row carries it" in capsys.readouterr().err

    # an older run without the new metric: the default falls back to win_rate
    write_run(tmp_path / "s", "xpo", 0, q, [0.3, 0.4, 0.5, 0.6])
    assert rp.report([tmp_path / "s"], tmp_path / "out3")["metric"] == "win_rate"


def test_flat_passive_derives_one_level(tmp_path, no_plot):
    for seed in (0, 1):
        write_run(tmp_path / "s", "passive", seed, [0, 200, 400], [0.3, 0.3, 0.3])
        write_run(tmp_path / "s", "ee_ts", seed, [0, 200, 400], [0.3, 0.4, 0.5])
    t = rp.report([tmp_path / "s"], tmp_path / "out")["tasks"]["toy"]
    assert [x["label"] for x in t["targets"]] == ["0.300", "passive final (0.300)"]
    # both start at the target: reached at 0 queries, ratio 1
    assert t["strategies"]["ee_ts"]["targets"]["0.300"]["mean_curve"] == 0.0
    assert t["strategies"]["ee_ts"]["targets"]["0.300"]["ratio"] == 1.0


def test_without_passive_there_is_no_ratio(tmp_path, no_plot):
    for seed in (0, 1):
        write_run(tmp_path / "s", "ee_ts", seed, [0, 200, 400], [0.2, 0.4 + 0.1 * seed, 0.6])
    t = rp.report([tmp_path / "s"], tmp_path / "out")["tasks"]["toy"]
    assert t["passive"] is None and t["derived_targets"]["from"] == "all groups (no passive)"
    assert [x["value"] for x in t["targets"]] == pytest.approx([0.3, 0.4, 0.5])
    e = t["strategies"]["ee_ts"]
    assert math.isnan(e["targets"]["0.400"]["ratio"]) and "acceptance" not in e
    # seed means 0.2, 0.45, 0.6: 0.4 is crossed at 200 * 0.2 / 0.25
    assert e["targets"]["0.400"]["mean_curve"] == pytest.approx(160)
    assert "| 160 (2/2 seeds) |" in (tmp_path / "out" / "report.md").read_text()


def test_acceptance_checks(tmp_path, no_plot):
    q = list(range(0, 1001, 100))
    lin = lambda a, b: [a + (b - a) * x / 1000 for x in q]
    runs = {
        "passive": {s: lin(0.2 + 0.01 * s, 0.5 + 0.01 * s) for s in (0, 1, 2)},
        # reaches passive's final (0.51) at 200 of passive's 1000 queries, ends well above it
        "ee_ts": {s: [min(0.2 + 0.0016 * x, 0.52 + 0.0002 * x) + 0.01 * s for x in q] for s in (0, 1, 2)},
        "bai_ts": {s: lin(0.2, 0.55) for s in (0, 1, 2)},
    }
    runs["bai_ts"][1] = list(runs["bai_ts"][1])
    runs["bai_ts"][1][1] += 0.3  # a drop of 0.3 from 100 to 200 queries: before 1/5, ignored
    runs["bai_ts"][1][6] -= 0.1  # 0.1 below its neighbours at 600: a collapse after 1/5
    for strategy, seeds in runs.items():
        for seed, w in seeds.items():
            write_run(tmp_path / "s", strategy, seed, q, w, budget=1000)
    for seed, w in runs["bai_ts"].items():  # apl: same curves, no interval in the eval rows
        write_run(tmp_path / "s", "apl", seed, q, w, budget=1000, half=None)
    summary = rp.report([tmp_path / "s"], tmp_path / "out")
    s = summary["tasks"]["toy"]["strategies"]
    pf = np.mean([w[-1] for w in runs["passive"].values()])
    for name in ("ee_ts", "bai_ts"):
        a = s[name]["acceptance"]
        mine = first_crossing(*mean_curve([(q, w) for w in runs[name].values()]), pf)
        base = first_crossing(*mean_curve([(q, w) for w in runs["passive"].values()]), pf)
        assert (a["queries"], a["passive_queries"], a["ratio"]) == pytest.approx((mine, base, mine / base))
        assert a["one_third"] == (mine / base <= 1 / 3)
        lo = mean_ci([w[-1] for w in runs[name].values()])[1]
        assert a["final_lo"] == pytest.approx(lo) and a["final_above_passive"] == (lo > pf)
    assert s["ee_ts"]["acceptance"]["one_third"] and s["ee_ts"]["acceptance"]["final_above_passive"]
    assert not s["bai_ts"]["acceptance"]["one_third"]
    # ee_ts's seed mean is 0.37 at 100 and 0.53 at 200: it crosses 0.51 at 187.5; passive at 1000
    assert s["ee_ts"]["acceptance"]["ratio"] == pytest.approx(0.1875)
    # collapse: only the drop after the first fifth, against the later eval's half-width 0.05
    c = s["bai_ts"]["no_collapse"]
    assert c["no_collapse"] is False and len(c["drops"]) == 1
    d = c["drops"][0]
    assert (d["seed"], d["from_queries"], d["to_queries"]) == (1, 500, 600)
    assert (d["drop"], d["half_width"]) == pytest.approx((0.1 - 0.035, 0.05))
    assert c["pairs_checked"] == 3 * 8  # evals 200..1000: 8 consecutive pairs per seed
    assert s["passive"]["no_collapse"]["no_collapse"] is True
    assert s["apl"]["no_collapse"]["no_collapse"] is None and "not checked" in s["apl"]["no_collapse"]["note"]
    md = (tmp_path / "out" / "report.md").read_text()
    row = next(x for x in md.splitlines() if x.startswith("| ee_ts | 188 (passive 1000) | ×0.19 ["))
    cells = [c.strip() for c in row.strip("| ").split(" | ")]
    assert (cells[3], cells[5], cells[6]) == ("yes", "yes", "yes")  # (a), (b), (c)
    assert "bai_ts seed 1: drop 0.065 > half-width 0.050 between 500 and 600 queries" in md


def test_one_seed_report_does_not_claim_a_band(tmp_path):
    write_run(tmp_path / "s", "passive", 0, [0, 200, 400], [0.1, 0.2, 0.3])
    write_run(tmp_path / "s", "ee_ts", 0, [0, 200, 400], [0.1, 0.3, 0.4])
    summary = rp.report([tmp_path / "s"], tmp_path / "out", targets=(0.2,))
    t = summary["tasks"]["toy"]
    assert "band" not in t["plot_title"] and "no interval" in t["plot_title"]
    e = t["strategies"]["ee_ts"]
    assert e["targets"]["0.20"]["ratio"] == pytest.approx(100 / 200)
    assert math.isnan(e["targets"]["0.20"]["ratio_lo"])  # one seed: no bootstrap interval
    # AUC: ee_ts (0.2 * 200 + 0.35 * 200) / 400 = 0.275, passive 0.2
    assert e["vs_passive"]["auc"]["per_seed"] == pytest.approx([0.075])
    assert math.isnan(e["vs_passive"]["auc"]["lo"]) and math.isnan(e["vs_passive"]["auc"]["boot_lo"])
    assert e["acceptance"]["final_above_passive"] is None  # no interval with one seed
    assert "+0.075 (n=1)" in (tmp_path / "out" / "report.md").read_text()


def test_incomplete_run_is_reported_as_such(tmp_path, no_plot):
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
    # the seed mean beyond 100 queries rests on seed 1 alone
    assert p["targets"]["0.35"]["mean_curve"] == pytest.approx(300.0)
    # the curve beyond 100 queries rests on one seed only: no band there
    assert p["curve"]["n"][50] == 1 and math.isnan(p["curve"]["lo"][50])
    md = (tmp_path / "out" / "report.md").read_text()
    assert "incomplete" in md and "1/2 seeds" in md


def test_never_reached_and_bad_dirs(tmp_path, capsys, no_plot):
    write_run(tmp_path / "s", "passive", 0, [0, 400], [0.1, 0.2])
    write_run(tmp_path / "s", "passive", 1, [0, 400], [0.1, 0.25])
    assert report_cli.main([str(tmp_path / "s"), "--targets", "0.9"]) == 0
    md = (tmp_path / "s" / "report" / "report.md").read_text()
    assert "not reached (0/2 seeds)" in md
    assert "not reached" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match="not a run directory"):
        rp.report([tmp_path / "nothing"], tmp_path / "o")
    assert report_cli.main([str(tmp_path / "s"), "--targets", "1.5"]) == 2
    assert "--targets: 1.5" in capsys.readouterr().err
    assert report_cli.main([str(tmp_path / "nothing")]) == 2
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
    s = rp.load_run(d).series("win_rate")
    assert s.queries.tolist() == [0, 100, 200, 300, 400]
    assert s.values[0] == 0.05 and math.isnan(s.lo[0]) and s.lo[1] == pytest.approx(0.15)
    # 0.1 is crossed between the start (0.05 at 0) and the first eval (0.2 at 100)
    assert st.queries_to_target(s.queries, s.values, 0.1) == pytest.approx(100 * 0.05 / 0.15)
    assert st.auc(s.queries, s.values, BUDGET) == pytest.approx(
        np.trapezoid([0.05, 0.2, 0.3, 0.4, 0.5], [0, 100, 200, 300, 400]) / BUDGET)


def test_runs_that_differ_in_a_setting_form_separate_groups(tmp_path, no_plot):
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
    assert list(s["strategies"]) == ["passive mixed.gamma=0.0", "ee_ts mixed.gamma=0.0",
                                     "ee_ts mixed.gamma=0.5"]
    g = s["strategies"]["ee_ts mixed.gamma=0.5"]
    assert g["seeds"] == [0, 1] and g["final"]["mean"] == pytest.approx(0.55)
    # 0.4 is crossed at 200 + 200 * (0.4 - 0.35) / 0.2 = 250; passive at 300
    assert g["targets"]["0.40"]["ratio"] == pytest.approx(250 / 300)


def test_a_key_only_newer_runs_hold_does_not_split_groups(tmp_path, no_plot):
    """Runs made before a config key existed lack it in config.yaml: they ran as its default
    does and count with it (the passive runs, without a `mixed` section, are mixed.gamma=0.0);
    newer runs that all hold the default, or a key today's config does not know with one value,
    do not vary (a report over two rounds of sweeps)."""
    q, w = [0, 200, 400], [0.1, 0.3, 0.5]
    for seed in (0, 1):
        write_run(tmp_path / "old", "passive", seed, q, w)
        write_run(tmp_path / "old", "ee_ts", seed, q, w, mixed={"gamma": 0.75})
        write_run(tmp_path / "new", "ee_ts", seed, q, w, mixed={"gamma": 0.875, "min_confidence": 0.5},
                  data={"train": None}, policy={"lora": False})
        write_run(tmp_path / "new2", "ee_ts", seed, q, w, mixed={"gamma": 0.875, "min_confidence": 0.75})
    s = rp.report([tmp_path / "old", tmp_path / "new"], tmp_path / "out", targets=(0.4,))["tasks"]["toy"]
    assert s["varying"] == ["mixed.gamma"]
    assert list(s["strategies"]) == ["passive mixed.gamma=0.0", "ee_ts mixed.gamma=0.75",
                                     "ee_ts mixed.gamma=0.875"]
    # a new key set away from its default in some runs: the runs without it show the default
    s = rp.report([tmp_path / "old", tmp_path / "new2"], tmp_path / "out2", targets=(0.4,))["tasks"]["toy"]
    assert s["varying"] == ["mixed.gamma", "mixed.min_confidence"]
    assert list(s["strategies"]) == ["passive mixed.gamma=0.0 mixed.min_confidence=0.5",
                                     "ee_ts mixed.gamma=0.75 mixed.min_confidence=0.5",
                                     "ee_ts mixed.gamma=0.875 mixed.min_confidence=0.75"]


def test_baseline_names_one_of_two_passive_groups(tmp_path, no_plot, capsys):
    """Plain passive and passive with mixed labels in one report: --baseline picks the one the
    ratios are taken to (the default would pick the first passive group in label order, here
    mixed.gamma=0.0)."""
    for seed in (0, 1):
        write_run(tmp_path / "a", "passive", seed, [0, 200, 400], [0.3, 0.45, 0.5], mixed={"gamma": 0.0})
        write_run(tmp_path / "b", "passive", seed, [0, 200, 400], [0.3, 0.35, 0.4], mixed={"gamma": 0.75})
    t = rp.report([tmp_path / "a", tmp_path / "b"], tmp_path / "out", baseline="passive mixed.gamma=0.75")
    t = t["tasks"]["toy"]
    assert t["passive"] == "passive mixed.gamma=0.75"
    other = t["strategies"]["passive mixed.gamma=0.0"]
    # the target is the baseline's final 0.4, which the other group crosses at 200 * 0.1 / 0.15
    assert other["targets"]["passive final (0.400)"]["mean_curve"] == pytest.approx(200 * 0.1 / 0.15)
    assert report_cli.main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "o2"),
                            "--baseline", "passive"]) == 2
    assert "matches 2 groups" in capsys.readouterr().err


def test_a_run_given_twice_counts_once_and_a_repeated_seed_is_an_error(tmp_path, no_plot):
    q, w = [0, 200, 400], [0.1, 0.3, 0.5]
    a = write_run(tmp_path / "s", "passive", 0, q, w)
    write_run(tmp_path / "s", "passive", 1, q, [0.1, 0.2, 0.3])
    # the sweep and one of its runs again: seed 0 once, so the final mean is (0.5 + 0.3) / 2
    s = rp.report([tmp_path / "s", a], tmp_path / "o", targets=(0.4,))["tasks"]["toy"]
    assert s["strategies"]["passive"]["seeds"] == [0, 1]
    assert s["strategies"]["passive"]["final"]["mean"] == pytest.approx(0.4)
    # another directory holding the same group and seed (a copy, a rerun) is refused
    write_run(tmp_path / "t", "passive", 0, q, w)
    with pytest.raises(ValueError, match=r"seed 0 .*give each seed of a group once"):
        rp.report([tmp_path / "s", tmp_path / "t"], tmp_path / "o2")


def test_plot_labels_keep_only_what_tells_a_strategys_groups_apart():
    from duel.report_render import short_labels

    names = ["passive candidates=4 replay.updates=10", "ee_ts candidates=8 mixed.gamma=0.5",
             "ee_ts candidates=8 mixed.gamma=0.75", "bai_ts candidates=8 mixed.gamma=0.5", "xpo"]
    assert short_labels(names) == {
        "passive candidates=4 replay.updates=10": "passive", "ee_ts candidates=8 mixed.gamma=0.5":
        "ee_ts mixed.gamma=0.5", "ee_ts candidates=8 mixed.gamma=0.75": "ee_ts mixed.gamma=0.75",
        "bai_ts candidates=8 mixed.gamma=0.5": "bai_ts", "xpo": "xpo"}

"""bench/gpu_vs_model.py on the committed H200 run: measured rows joined to the cost model's."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bench import gpu_vs_model  # noqa: E402


def test_joins_measured_to_predicted(tmp_path):
    out = tmp_path / "gvm.json"
    assert gpu_vs_model.main(["--json", str(out), "--bandwidth", "4e12"]) == 0
    d = json.loads(out.read_text())
    cm = json.loads((REPO / "bench/results/cost_model.json").read_text())
    model = {r["program"] + " " + r["shape"]: r for r in cm["rows"]}
    # the H200 ran the decode program from before the one-query attention: its rows are the ones compared
    model.update({r["program"] + " " + r["shape"]: r for r in cm["before_one_query_attention"]["rows"]})
    rows = {(r["program"], r["batch"]): r for r in d["decode"]}
    assert len(rows) == 6  # 2 shapes x batch 16/64/256, the Qwen 256 row from its own file
    q = rows[("generate qwen2.5-0.5b", 256)]
    p = model["generate qwen2.5-0.5b B=256 128+128"]
    assert q["measured_s"] == pytest.approx(256 * 128 / q["measured_tok_s"], abs=1e-4)
    assert q["measured_over_predicted_time"] == pytest.approx(q["measured_s"] / p["predicted_s"], abs=0.01)
    assert q["ideal_bytes_fraction"] == pytest.approx(p["ideal_bytes"] / 4e12 / q["measured_s"], abs=0.002)
    assert "predicted_s" in rows[("generate pythia-1b", 16)]  # batch 16 compiled since 2026-12-05
    fit = d["decode_latency_fit"]
    assert len(fit["rows"]) == 6 and fit["tau_us"] > 0 and fit["bandwidth_tb_s"] > 0
    pred = {(r["program"], r["model"], r["batch"]): r for r in d["fit_predictions"]}
    for r in fit["rows"]:  # the fit applied to the program that ran gives the fitted calls back
        assert pred[("as run", r["program"].split()[-1], r["batch"])]["fit_s"] == pytest.approx(r["fit_s"], abs=2e-4)
    cur = {x["program"] + " " + x["shape"]: x for x in cm["rows"]}["generate qwen2.5-0.5b B=64 128+128"]
    want = cur["kernels"] * fit["tau_s"] + cur["bytes"] / fit["bandwidth_bytes_s"]
    assert pred[("current", "qwen2.5-0.5b", 64)]["fit_s"] == pytest.approx(want, abs=1e-4)
    assert ("cost_model_cudnn_attention", "qwen2.5-0.5b", 256) in pred
    step = [r for r in d["train_step"] if r["impl"] == "duel (jax, vocab_chunk=None)" and "pythia" in r["program"]][0]
    pred = model["DPO step pythia-1b [mb1] 8 pairs x 512, mb=1, remat=False"]["predicted_s"] + \
        model["reference forward pythia-1b 16 seq x 512"]["predicted_s"]
    assert step["predicted_s"] == pytest.approx(pred, abs=1e-4)


def test_latency_fit_recovers_a_known_launch_cost(tmp_path):
    """Calls made of kernels x 3 us + bytes / 2.5 TB/s: the fit returns those two numbers."""
    rows, measured = [], []
    for name, kernels in (("a", 40_000), ("b", 55_000)):
        for batch, gb in ((16, 150), (64, 300), (256, 900)):
            rows.append({"program": f"generate {name}", "shape": f"B={batch} 128+128", "kernels": kernels,
                         "bytes": gb * 1e9})
            t = kernels * 3e-6 + gb * 1e9 / 2.5e12
            measured.append({"model": name, "batch": batch, "ours_tok_s": batch * 128 / t})
    (tmp_path / "sampler.json").write_text(json.dumps({"rows": measured}))
    fit = gpu_vs_model.latency_fit(tmp_path, {"rows": rows})
    assert fit["tau_us"] == pytest.approx(3.0, abs=1e-3) and fit["bandwidth_tb_s"] == pytest.approx(2.5, abs=1e-2)
    assert all(abs(r["fit_err_pct"]) < 0.1 for r in fit["rows"])


def test_calls_are_compared_with_the_program_that_ran(tmp_path):
    """Calls measured before the one-query attention landed read the counts kept for that program;
    later calls read the current rows."""
    now = {"program": "generate q", "shape": "B=16 128+128", "kernels": 357}
    old = {"program": "generate q", "shape": "B=16 128+128", "kernels": 406}
    other = {"program": "DPO step p", "shape": "x", "kernels": 9}
    model = {"rows": [now, other], "before_one_query_attention": {"rows": [old]}}
    (tmp_path / "sampler.json").write_text(json.dumps({"time": "2026-12-04 11:41 UTC", "rows": []}))
    assert gpu_vs_model.as_run(model, tmp_path)["rows"] == [old, other]
    (tmp_path / "sampler.json").write_text(json.dumps({"time": "2026-12-06 09:00 UTC", "rows": []}))
    assert gpu_vs_model.as_run(model, tmp_path)["rows"] == [now, other]

"""Measured on a GPU against predicted by the cost model: the first check of `bench/cost_model.py`.

Reads the JSON a device run of `bench/gpu.sh` wrote (default `bench/results/gpu-h200/`, the
2026-12-04 H200 run) and `bench/results/cost_model.json` (predicted for an H100 SXM: 989 TFLOP/s,
3.35 TB/s, no GPU), and prints, per program both describe at the same shapes:

- decode, the whole `generate` call (128-token prompts + 128 new, bf16, no top-k/top-p): measured
  tok/s and s per call, the `transformers` peer measured in the same run, the predicted time, and
  the fraction of the cost model's ideal bytes moved at `--bandwidth` (the copy rate a reader
  trusts; default 4.3 TB/s, the read + write rate of a large device-to-device copy measured on an
  H200 of this workplace, device/KINDS.md: the run's own `copy_bandwidth_gbs` was 2.0-3.3 TB/s,
  measured too briefly to be trusted, see docs/scale.md);
- the DPO step (8 pairs x 256 + 256 tokens, one micro-batch, no remat): policy step + reference
  forward, measured against the two predicted programs' sum.

    python bench/gpu_vs_model.py                       # table; --json PATH also writes it
    python bench/gpu_vs_model.py --dir $OUT --bandwidth 4.8e12
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LABEL_P = "predicted (XLA cost model, no GPU; H100 SXM)"


def _load(d: Path, pattern: str) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(d.glob(pattern))]


def _measured_calls(d: Path) -> dict[tuple[str, int], dict]:
    """(model, batch) -> the sampler row measured on the GPU (a later file's row wins)."""
    measured: dict[tuple[str, int], dict] = {}
    for f in _load(d, "sampler*.json"):
        for r in f["rows"]:
            measured[(r["model"], r["batch"])] = r
    return measured


def _generate_rows(model: dict) -> dict[tuple[str, int], dict]:
    """(model, batch) -> the cost model's row for the whole `generate` call."""
    return {(r["program"].split()[-1], int(r["shape"].split()[0][2:])): r
            for r in model["rows"] if r["program"].startswith("generate ")}


def decode_rows(d: Path, model: dict, bandwidth: float) -> list[dict]:
    """One row per (model, batch) measured by bench/sampler.py (a later file's row wins)."""
    measured, pred = _measured_calls(d), _generate_rows(model)
    out = []
    for (name, batch), r in sorted(measured.items()):
        tokens = batch * 128
        t = tokens / r["ours_tok_s"]
        row = {"program": f"generate {name}", "batch": batch, "measured_tok_s": round(r["ours_tok_s"]),
               "measured_s": round(t, 4)}
        if "peer_tok_s" in r:
            row.update(peer_tok_s=round(r["peer_tok_s"]), x_peer=round(r["speedup"], 2))
        p = pred.get((name, batch))
        if p is not None:
            row.update(predicted_s=round(p["predicted_s"], 4), predicted_tok_s=round(p["predicted_tok_s"]),
                       measured_over_predicted_time=round(t / p["predicted_s"], 2),
                       ideal_bytes_fraction=round(p["ideal_bytes"] / bandwidth / t, 3))
        out.append(row)
    return out


def latency_fit(d: Path, model: dict) -> dict:
    """A second model of the measured decode calls: t = kernels x tau + bytes / bandwidth, with
    `kernels` (launches per call) and `bytes` counted on the compiled H100 program
    (bench/cost_model.py, generate rows), tau and bandwidth fitted by least squares to the calls
    measured on the GPU (every model and batch with a compiled row). The roofline (max of FLOPs
    and bytes time) has no launch term; this one asks how much of a call the count of kernels
    explains. Also fitted with the bandwidth held at 4.3 TB/s (tau alone)."""
    import numpy as np

    measured = _measured_calls(d)
    pts = [(name, batch, r["kernels"], r["bytes"], batch * 128 / measured[(name, batch)]["ours_tok_s"])
           for (name, batch), r in _generate_rows(model).items() if r.get("kernels") and (name, batch) in measured]
    if len(pts) < 3:
        return {"note": "fewer than 3 measured calls with a kernel count: no fit"}
    k, b, t = (np.array([p[i] for p in pts], float) for i in (2, 3, 4))
    (tau, inv_bw), *_ = np.linalg.lstsq(np.stack([k, b], 1), t, rcond=None)
    tau_fixed = float(np.dot(k, t - b / 4.3e12) / np.dot(k, k))
    rows = []
    for (name, batch, kern, byt, meas), fit, fixed in zip(pts, k * tau + b * inv_bw, k * tau_fixed + b / 4.3e12):
        rows.append({"program": f"generate {name}", "batch": batch, "kernels": int(kern), "GB": round(byt / 1e9, 1),
                     "measured_s": round(meas, 4), "fit_s": round(float(fit), 4),
                     "fit_err_pct": round(100 * (float(fit) / meas - 1), 1),
                     "kernel_share_of_fit": round(float(kern * tau / fit), 2),
                     "fit_4p3_s": round(float(fixed), 4), "fit_4p3_err_pct": round(100 * (float(fixed) / meas - 1), 1)})
    return {"model": "t = kernels x tau + bytes / bandwidth (least squares over the rows)",
            "tau_us": round(float(tau) * 1e6, 3), "bandwidth_tb_s": round(1 / float(inv_bw) / 1e12, 2),
            "tau_s": float(tau), "bandwidth_bytes_s": 1 / float(inv_bw),
            "tau_us_at_4p3_tb_s": round(tau_fixed * 1e6, 3), "rows": rows}


ONE_QUERY_ATTENTION_SINCE = "2026-12-05"  # the decode program changed (duel.models.layers.attention_one_query)


def as_run(model: dict, d: Path) -> dict:
    """The cost model's rows for the program the GPU ran: calls measured before the one-query
    attention landed (the H200 run of 2026-12-04) are compared and fitted against that program's
    counts, which the JSON keeps under "before_one_query_attention"."""
    times = [f["time"] for f in _load(d, "sampler*.json") if "time" in f]
    if "before_one_query_attention" not in model or not times or max(times) >= ONE_QUERY_ATTENTION_SINCE:
        return model
    old = model["before_one_query_attention"]["rows"]
    kept = {(r["program"], r["shape"]) for r in old}
    return {**model, "rows": old + [r for r in model["rows"] if (r["program"], r["shape"]) not in kept]}


def fit_predictions(fit: dict, programs: dict[str, dict]) -> list[dict]:
    """The fitted t = kernels x tau + bytes / bandwidth applied to the generate rows of other
    compiled programs (the one that ran, the current one, what-ifs), with the roofline beside it."""
    out = []
    for label, model in programs.items():
        for (name, batch), r in sorted(_generate_rows(model).items()):
            if r.get("kernels"):
                t = r["kernels"] * fit["tau_s"] + r["bytes"] / fit["bandwidth_bytes_s"]
                out.append({"program": label, "model": name, "batch": batch, "kernels": int(r["kernels"]),
                            "fit_s": round(t, 4), "roofline_s": round(r["predicted_s"], 4)})
    return out


def train_rows(d: Path, model: dict) -> list[dict]:
    pred = {r["program"]: r for r in model["rows"]}
    step, ref = pred.get("DPO step pythia-1b [mb1]"), pred.get("reference forward pythia-1b")
    out = []
    for f in _load(d, "train_step*.json"):
        for r in f["results"]:
            if "step_s" not in r:
                continue
            row = {"program": f"DPO step {r['shape']}", "impl": r["impl"], "measured_s": round(r["step_s"], 4),
                   "mfu_pct": round(r["mfu_pct"], 1)}
            if r["shape"] == "pythia-1b" and step and ref and r["impl"].startswith("duel"):
                p = step["predicted_s"] + ref["predicted_s"]
                row.update(predicted_s=round(p, 4), measured_over_predicted_time=round(r["step_s"] / p, 2))
            out.append(row)
    return out


def _square(rows: list[dict]) -> list[dict]:
    """Every row with every column (print_table takes the first row's): '' where a row has none."""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    return [{c: r.get(c, "") for c in cols} for r in rows]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=ROOT / "bench/results/gpu-h200")
    ap.add_argument("--model", type=Path, default=ROOT / "bench/results/cost_model.json")
    ap.add_argument("--bandwidth", type=float, default=4.3e12, help="bytes/s for the ideal-bytes fraction")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--what-if", type=Path, nargs="*", default=[ROOT / "bench/results/cost_model_cudnn_attention.json"],
                    help="other cost-model JSONs whose generate rows the fit predicts")
    args = ap.parse_args(argv)
    from bench.common import print_table

    current = json.loads(args.model.read_text())
    model = as_run(current, args.dir)
    devices = sorted({f["machine"].get("device", "?") for f in _load(args.dir, "*.json") if "machine" in f})
    dec, train = decode_rows(args.dir, model, args.bandwidth), train_rows(args.dir, model)
    print_table(_square(dec), title=f"decode: measured on {', '.join(devices)} vs {LABEL_P}; "
                           f"ideal-bytes fraction at {args.bandwidth / 1e12:.2f} TB/s")
    print_table(_square(train), title=f"DPO step: measured vs {LABEL_P}")
    fit, predictions = latency_fit(args.dir, model), []
    if "rows" in fit:
        print_table(fit["rows"], title=f"decode calls: measured vs kernels x {fit['tau_us']} us + bytes / "
                                       f"{fit['bandwidth_tb_s']} TB/s (fitted; with 4.3 TB/s held: tau "
                                       f"{fit['tau_us_at_4p3_tb_s']} us)")
        programs = {"as run": model, "current": current}
        programs.update({p.stem: json.loads(p.read_text()) for p in args.what_if if p.exists()})
        predictions = fit_predictions(fit, programs)
        print_table(predictions, title=f"decode calls by the fit ({LABEL_P}): the program that ran, the current "
                                       "one, what-ifs")
    if args.json:
        args.json.write_text(json.dumps({"benchmark": "gpu_vs_model", "measured_on": devices, "predicted": LABEL_P,
                                         "bandwidth": args.bandwidth, "decode": dec, "train_step": train,
                                         "decode_latency_fit": fit, "fit_predictions": predictions},
                                        indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The GPU benchmarks' code paths, run here on CPU so the one device call (bench/gpu.sh) works.

bench/gpu.sh --check runs every stage (memory, e2e on both shapes, train_step, sampler) with the
options of the GPU run on scaled-down shapes, as the device would run it: results into $OUT, and
without ray, tensorboardX or datasets (the GPU image has none; stub packages that refuse to import
stand in for their absence). Also: the 1B-shape DPO step compiles for its memory analysis without
allocating its state, and the bench's copies of the learner's settings and shapes agree with it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

ABSENT_ON_DEVICE = ("ray", "tensorboardX", "datasets")


def _env(tmp_path: Path, out: Path) -> dict:
    absent = tmp_path / "absent"
    for name in ABSENT_ON_DEVICE:
        (absent / name).mkdir(parents=True, exist_ok=True)
        (absent / name / "__init__.py").write_text(f"raise ImportError('{name} is not on the GPU image')\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("XLA_FLAGS", "JAX_PLATFORMS", "DUEL_GPU_DEADLINE", "DUEL_GPU_STAGE_LIMIT")}
    env.update(OUT=str(out), PYTHON=sys.executable, PYTHONPATH=str(absent), HF_HUB_OFFLINE="1",
               JAX_COMPILATION_CACHE_DIR=str(tmp_path / "jax-cache"))
    return env


def _batch_bytes(pairs: int, prompt: int, response: int) -> int:
    return 4 * (2 * pairs * prompt + 4 * pairs * response) + 4 * 4 * pairs  # int32 ids/masks, 4 float32 [P]


@pytest.mark.slow
def test_gpu_sh_check_runs_every_stage(tmp_path):
    from bench.train_step import FULL, check_shape, step_flops
    from duel.models import param_shapes

    out = tmp_path / "out"
    before = {p: p.stat().st_mtime for p in (REPO / "bench" / "results").glob("*.json")}
    proc = subprocess.run(["bash", str(REPO / "bench" / "gpu.sh"), "--check"], cwd=REPO, env=_env(tmp_path, out),
                          capture_output=True, text=True)  # --check: no time limits (bench/gpu.sh)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    assert "preflight ok" in log
    assert "done: memory e2e-pythia-1b train_step sampler e2e-qwen2.5-0.5b; cut at their limit (partial JSON kept): none" in log
    assert sorted(p.name for p in out.iterdir()) == ["e2e-pythia-1b.json", "e2e-qwen2.5-0.5b.json", "gpu.log",
                                                      "memory.json", "sampler.json", "train_step.json"]
    # a check run leaves the committed results alone
    assert {p: p.stat().st_mtime for p in (REPO / "bench" / "results").glob("*.json")} == before
    load = lambda name: json.loads((out / name).read_text())

    mem = load("memory.json")
    assert mem["check"] and mem["backend"] == "cpu" and "NOT the GPU peak" in mem["note"]
    assert [r["variant"] for r in mem["results"]] == ["preset", "mb1"]
    n = sum(math.prod(s) for s in param_shapes(check_shape(FULL["pythia-1b"])).values())
    preset = mem["results"][0]
    assert preset["micro_batches"] == 4 and preset["analytic"]["params"] == n
    # arguments = float32 masters + AdamW mu, nu + the batch (+ step counters): the state really is AdamW f32
    assert list(preset["xla"]) == ["cpu"]
    extra = preset["xla"]["cpu"]["argument"] - 12 * n - _batch_bytes(mem["pairs"], mem["prompt_tokens"], mem["response_tokens"])
    assert 0 <= extra <= 64, extra
    assert preset["xla"]["cpu"]["alias"] >= 12 * n  # the donated state is reused for the new one
    assert np.isfinite(preset["device_run"]["loss"]) and preset["device_run"]["peak_bytes_in_use"] is None  # CPU: no stats

    for shape in ("pythia-1b", "qwen2.5-0.5b"):
        e2e = load(f"e2e-{shape}.json")
        assert e2e["check"] and e2e["shape"] == shape and e2e["prompts"] == 2 and e2e["steps"] == 1
        assert e2e["compute_dtype"] == "bfloat16" and e2e["model"]["vocab"] == 512
        assert sum(e2e["phase_fraction"].values()) == pytest.approx(1.0)
        assert all(np.isfinite(e2e["loss"])) and len(e2e["loss"]) == 2
    assert load("e2e-pythia-1b.json")["publish_pythia_layers"]["bytes"] > 100e6  # one real 1B layer in bf16
    assert load("e2e-qwen2.5-0.5b.json")["publish_pythia_layers"] is None  # --publish-layers 0

    ts = load("train_step.json")
    for shape in ("pythia-1b", "qwen2.5-0.5b"):
        rows = [r for r in ts["results"] if r["shape"] == f"{shape} (check)"]
        assert [r["impl"] for r in rows] == ["duel (jax, vocab_chunk=None)", "duel (jax, vocab_chunk=16)",
                                            "transformers (torch)"]
        c = check_shape(FULL[shape])
        assert all(r["flops_per_step"] == step_flops(c, 2 * ts["pairs"], ts["prompt_tokens"] + ts["response_tokens"])
                   for r in rows)
        assert all(r["seconds"] > 0 for r in rows)
        assert any(r.get("speedup_vs_torch", 0) > 0 for r in ts["results"] if r["shape"] == shape)

    s = load("sampler.json")
    assert [(r["model"], r["batch"]) for r in s["rows"]] == [
        ("pythia-1b", 2), ("pythia-1b", 4), ("qwen2.5-0.5b", 2), ("qwen2.5-0.5b", 4)]
    assert all(r["ours_tok_s"] > 0 and r["peer_tok_s"] > 0 and "plain_cache_tok_s" not in r for r in s["rows"])


@pytest.mark.slow
def test_memory_pythia_1b_step_compiles_without_allocating(tmp_path):
    """The real 1B shape, 8 pairs x 512 tokens: XLA's buffer assignment, with the process far
    below the ~12 GB the state alone would take if it were allocated."""
    out = tmp_path / "out"
    env = _env(tmp_path, out)
    env["DUEL_BENCH_RESULTS"] = str(out)
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "memory.py"), "--variants", "preset"], cwd=REPO,
                          env=env, capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    mem = json.loads((out / "memory.json").read_text())
    n = 1_011_781_632  # Pythia-1B (GPTNeoXForCausalLM, untied head)
    r = mem["results"][0]
    assert r["analytic"]["params"] == n and (mem["pairs"], mem["prompt_tokens"], mem["response_tokens"]) == (8, 256, 256)
    x = r["xla"]["cpu"]
    assert 0 <= x["argument"] - 12 * n - _batch_bytes(8, 256, 256) <= 64
    assert x["peak"] > 12 * n + 4 * n  # state + at least the gradients
    assert mem["max_rss_gib"] < 4.0, mem["max_rss_gib"]


def test_memory_h100_target_without_a_gpu(tmp_path):
    """Deviceless XLA:GPU compile for an H100 (needs the JAX CUDA plugin, not a GPU): its buffer
    assignment's own peak equals arguments + outputs - aliases + temporaries, and the GPU compiler
    keeps bf16 activations in bf16, so it needs less than the CPU one."""
    pytest.importorskip("jax_plugins.xla_cuda12")
    out = tmp_path / "out"
    env = _env(tmp_path, out)
    env.update(DUEL_BENCH_RESULTS=str(out), JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "memory.py"), "--check", "--variants", "mb1",
                           "--targets", "local,h100"], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    r = json.loads((out / "memory.json").read_text())["results"][0]
    gpu, cpu = r["xla"]["h100-aot"], r["xla"]["cpu"]
    assert gpu["argument"] == cpu["argument"]
    assert abs(gpu["peak"] - gpu["xla_peak_memory_in_bytes"]) <= 0.01 * gpu["peak"]
    assert gpu["temp"] < cpu["temp"]


def test_memory_train_config_is_the_learners():
    """bench/memory.py measures the TrainConfig the learner trains with (learner.configs, no Ray)."""
    import subprocess
    import sys

    from bench.memory import train_config
    from launch.presets import load_config
    from learner.learner import train_config as learner_train_config

    assert train_config is learner_train_config
    assert train_config(load_config("pythia-1b")).micro_batches == 4
    code = "import sys, bench.memory; assert 'ray' not in sys.modules, 'bench.memory imports ray'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_bench_shapes_agree():
    """The sampler's Hugging Face configs and the train step's ModelConfigs are the same models."""
    from bench.sampler import FULL as HF
    from bench.train_step import FULL
    from duel.models import ModelConfig

    for name, c in FULL.items():
        a = dataclasses.asdict(ModelConfig.from_hf(HF[name]))
        b = dataclasses.asdict(c)
        diff = {k for k in a if a[k] != b[k]}
        assert diff <= {"bos_token_id", "eos_token_id"}, (name, diff)


def test_memory_analytic_split():
    """The analytic split of the 1B step at the issue's batch, against hand arithmetic."""
    from bench.memory import analytic_memory, variant_config, train_config
    from bench.train_step import FULL
    from launch.presets import load_config

    c = FULL["pythia-1b"]
    n = 1_011_781_632
    tcfg, _ = variant_config(train_config(load_config("pythia-1b")), "mb1")
    a = analytic_memory(c, tcfg, False, 8, 256, 256)
    assert (a["params_f32"], a["adamw_f32"], a["grads_f32"], a["compute_copy"]) == (4 * n, 8 * n, 4 * n, 2 * n)
    # per token and layer: 2 bytes x (3 H + 4 N D + 2 I) + 6 bytes x heads x 512 (float32 + bf16 probabilities)
    per = 2 * (3 * 2048 + 4 * 2048 + 2 * 8192) + 6 * 8 * 512
    assert a["activations"] == 16 * 512 * 16 * per
    assert a["logits"] == 16 * 256 * 50304 * 10
    tcfg4, _ = variant_config(train_config(load_config("pythia-1b")), "preset")
    a4 = analytic_memory(c, tcfg4, False, 8, 256, 256)
    assert a4["activations"] * 4 == a["activations"] and a4["grads_f32"] == 8 * n  # + the accumulator


def test_sample_step_check_writes_both_samplers(tmp_path, monkeypatch):
    """bench/sample_step.py --check times both samplers and writes their ratio, not the committed results."""
    import json

    from bench import sample_step

    monkeypatch.setenv("DUEL_BENCH_RESULTS", str(tmp_path))
    assert sample_step.main(["--check"]) == 0
    out = json.loads((tmp_path / "sample_step.json").read_text())
    assert out["check"] and out["backend"] == "cpu" and len(out["rows"]) == 1
    r = out["rows"][0]
    assert (r["B"], r["V"], r["calls"]) == (8, 32, 3)
    assert r["one_pass_ms"] > 0 and r["reference_ms"] > 0
    assert r["one_pass/reference"] == r["one_pass_ms"] / r["reference_ms"]


def test_sampler_attention_what_if_falls_back_on_cpu(tmp_path, monkeypatch):
    """bench/sampler.py --attention cudnn (the next GPU call's what-if): without CUDA it keeps XLA's
    attention, says so in its JSON, and still measures the parity against the plain reference."""
    import json

    from bench import sampler
    from duel.models import layers

    monkeypatch.setenv("DUEL_BENCH_RESULTS", str(tmp_path))
    before = layers.attention
    sampler.main(["--check", "--no-plain", "--no-peer", "--models", "qwen2.5-0.5b", "--batches", "2",
                  "--attention", "cudnn", "--name", "attention_cudnn"])
    assert layers.attention is before  # nothing patched here
    out = json.loads((tmp_path / "attention_cudnn.json").read_text())
    assert out["attention"].startswith("xla (cudnn asked") and len(out["rows"]) == 1
    p = out["attention_parity"]
    assert not p["patched"] and p["patched_vs_reference_max_abs"] == p["xla_vs_reference_max_abs"] < 0.05

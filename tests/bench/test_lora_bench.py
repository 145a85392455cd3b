"""bench/lora.py --check: the LoRA DPO step compiles from abstract shapes with a state that is the
bf16 base plus float32 adapters and their AdamW moments (nothing else), and the publish payload is
the adapters' bf16 bytes."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


@pytest.mark.slow
def test_lora_bench_check_counts_adapters_only():
    from bench import lora as bench
    from duel.models import lora, param_shapes

    out = bench.main(["--check", "--variants", "lora"])
    c = bench.tiny(bench.QWEN3_8B)
    base = 2 * sum(math.prod(s) for s in param_shapes(c).values())  # bf16
    adapters = sum(math.prod(s) for s in lora.adapter_shapes(bench.SPEC, c).values())
    p, tp, n = out["pairs"], out["prompt_tokens"], out["response_tokens"]
    batch = 4 * (2 * p * tp + 4 * p * n) + 4 * 4 * p  # int32 ids/masks + 4 float32 per pair
    r = out["results"][0]
    extra = r["argument"] - base - 3 * 4 * adapters - batch  # float32 adapters + AdamW mu, nu
    assert 0 <= extra <= 64, extra  # + step counters
    assert r["alias"] >= base + 12 * adapters  # the donated state, base included, is reused in place
    assert out["publish"]["adapter_params"] == adapters
    assert out["publish"]["payload_bytes"] == 2 * adapters  # published in bf16: the adapters only

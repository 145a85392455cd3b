"""Time the first `generate` (compile + run) of a random model with the reverse policy's config
but a chosen vocabulary size (docs/results/README.md, "The bug"):

    PYTHONPATH=docs/results/heldout python docs/results/heldout/vocab_probe.py VOCAB [P N] [--trained]

--trained loads the held-out task's starting policy instead. Before the fix in
duel/sampling.py `_prefill`, V = 20, 22, 24 at 16 x 4 never finished compiling (18: 25.6 CPU s).
"""
import dataclasses
import sys
import time

import jax
import numpy as np

from duel.models import ModelConfig, build_model, load_pretrained
from duel.sampling import SamplingParams, generate

V = int(sys.argv[1])
P = int(sys.argv[2]) if len(sys.argv) > 2 else 16
N = int(sys.argv[3]) if len(sys.argv) > 3 else 4
cfg = ModelConfig(family='llama', vocab_size=24, hidden_size=96, num_layers=2, num_heads=4, num_kv_heads=4,
                  head_dim=24, intermediate_size=256, rotary_dim=24, norm_eps=1e-06, tie_word_embeddings=True,
                  max_position_embeddings=128, bos_token_id=1, eos_token_id=(2,), pad_token_id=0)
if "--trained" in sys.argv:
    from duel.tasks import get_task

    model, _ = load_pretrained(get_task("reverse_task:Reverse").starting_policy())
else:
    model = build_model(dataclasses.replace(cfg, vocab_size=V), seed=0)
print("vocab", model.config.vocab_size, "P", P, "N", N, jax.__version__, flush=True)
rng = np.random.default_rng(0)
ids = rng.integers(3, min(V, 21), size=(P, 7)).astype(np.int32)
ids[:, 0] = 1
mask = np.ones_like(ids)
params = SamplingParams(temperature=1.0, max_new_tokens=6, stop_token_ids=(2,), pad_token_id=0)
t0, c0 = time.time(), time.process_time()
out = generate(model, (ids, mask), jax.random.PRNGKey(0), params, N)
print(f"vocab {V} P {P} N {N}: first generate {time.time() - t0:.1f} s wall, {time.process_time() - c0:.1f} s cpu", out.tokens[0, :2].tolist(), flush=True)

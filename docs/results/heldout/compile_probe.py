"""The compile of duel's decode loop that never finishes on XLA:CPU (docs/results/README.md, first
section): the first `generate` of a task's starting policy, P prompts x N samples, timed.

    python docs/results/heldout/compile_probe.py TASK P N
    timeout 150 python docs/results/heldout/compile_probe.py reverse_task:Reverse 16 4  # hung before the fix (vocabulary 24)
    python docs/results/heldout/compile_probe.py reverse_task:Reverse 64 1              # 4.4 s
    python docs/results/heldout/compile_probe.py sort 16 4                              # 4.4 s (vocabulary 32)
    XLA_FLAGS=--xla_backend_optimization_level=0 python docs/results/heldout/compile_probe.py reverse_task:Reverse 16 4

Fixed in the tenth session (duel/sampling.py `_prefill`: the head runs on the repeated hidden state;
the cause was LLVM's loop vectorizer on a fused repeat of the first logits, docs/results/README.md):
all of these now compile in ~4-5 s. Before the fix, measured 2026-12-03 on the quiet 2-core VM: reverse 16 x 4 and 8 x 4 and 16 x 2 did not finish in
60-150 s (default flags); reverse 64 x 1 and 8 x 1: 4.3-4.4 s; sort 16 x 4: 4.4 s. Compiled
alone, the pieces of the loop at vocabulary 24 and 64 rows take 0.5-2 s each (the prefill, a
decode step, a while loop of decode steps, the sampler, the sampler on repeated logits).
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402

from duel.evaluate import generate_texts  # noqa: E402
from duel.models import load_pretrained  # noqa: E402
from duel.tasks import get_task, load_tokenizer  # noqa: E402

name, P, N = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
task = get_task(name)
path = task.starting_policy()
model, _ = load_pretrained(path)
tok = load_tokenizer(path)
print(name, "vocab", model.config.vocab_size, flush=True)
prompts = [r["prompt"] for r in task.eval_prompts][:P]
t0 = time.time()
texts, _ = generate_texts(model, tok, prompts, jax.random.PRNGKey(0), n=N, temperature=1.0,
                          max_new_tokens=task.max_new_tokens, batch_size=P)
print(name, f"{P} x {N}: first generate (compile + run) {time.time() - t0:.1f} s", texts[:2], flush=True)

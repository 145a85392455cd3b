"""Save generate outputs (tokens, log-probs, finished) for sort (16x4) and reverse (16x1), a few
keys and sampling settings, to OUT.npz; with a second argument REF.npz, compare bit for bit.
    PYTHONPATH=docs/results/heldout python docs/results/heldout/compare_tokens.py OUT.npz [REF.npz]

Run once before a change to the sampler and once after (docs/results/README.md, "The bug": 96
arrays, 0 differ, for the `_prefill` fix)."""
import sys
import time

import jax
import numpy as np

from duel.data import encode_prompts
from duel.models import load_pretrained
from duel.sampling import SamplingParams, generate
from duel.tasks import get_task, load_tokenizer

res = {}
for name, n in (("sort", 4), ("reverse_task:Reverse", 1), ("sort", 1)):
    task = get_task(name)
    path = task.starting_policy()
    model, _ = load_pretrained(path)
    tok = load_tokenizer(path)
    rows = [{"id": str(i), "prompt": r["prompt"], "messages": None} for i, r in enumerate(task.eval_prompts[:16])]
    batch, _ = encode_prompts(tok, rows, 512)
    for s, (temp, top_p, top_k) in enumerate(((1.0, 1.0, 0), (0.7, 0.9, 0), (1.3, 1.0, 5), (0.0, 1.0, 0))):
        params = SamplingParams(temperature=temp, top_p=top_p, top_k=top_k, max_new_tokens=task.max_new_tokens,
                                stop_token_ids=(tok.eos_token_id,), pad_token_id=tok.pad_token_id or 0)
        for k in range(2):
            t0 = time.time()
            out = generate(model, (batch.input_ids, batch.attention_mask), jax.random.PRNGKey(k), params, n)
            tag = f"{name}|n{n}|s{s}|k{k}"
            for f in ("tokens", "logprobs", "policy_logprobs", "finished"):
                res[f"{tag}|{f}"] = getattr(out, f)
            print(tag, f"{time.time() - t0:.1f} s", out.tokens[0, 0].tolist(), flush=True)
np.savez(sys.argv[1], **res)
if len(sys.argv) > 2:
    ref = np.load(sys.argv[2])
    bad = [k for k in ref.files if not np.array_equal(ref[k], res[k])]
    print(f"compared {len(ref.files)} arrays with {sys.argv[2]}: {len(bad)} differ", bad[:10])

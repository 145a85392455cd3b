"""Statistics of the held-out `reverse` task's starting policy (README.md in this folder).

Builds (or reuses from the cache, $DUEL_CACHE or ~/.cache/duel) the SFT starting policy of
reverse_task:Reverse, samples 8 responses per eval prompt (256) at temperature 1 and one greedy
response per prompt with duel's own sampler (duel.evaluate.generate_texts), and prints the fraction
well formed, exact, the mean gold reward, the distribution of k (positions right), the fraction of
prompts with at least one exact answer among the 8 samples, and the same for the SFT data itself
(sft_response, 32 draws per eval prompt) for comparison. CPU is enough (about a minute once
the policy is built; building it is about 5 minutes of SFT on a busy 2-core machine):

    cd /work/main && HF_HUB_OFFLINE=1 .venv/bin/python docs/results/heldout/sft_stats.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# XLA's CPU backend at its default optimisation level takes many minutes (on a busy 2-core
# machine, over half an hour) to compile the sampler for 64 prompts x 8 samples; level 0 takes
# seconds and samples the same distribution
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

import jax  # noqa: E402
import numpy as np  # noqa: E402

from duel.evaluate import generate_texts  # noqa: E402
from duel.models import load_pretrained  # noqa: E402
from duel.tasks import get_task, load_tokenizer  # noqa: E402

N = 8


def stats(task, prompts, texts):
    """texts[i]: the responses to prompts[i]."""
    flat = [(p, y) for p, ys in zip(prompts, texts) for y in ys]
    answer = {p: p[:-1][::-1] for p in prompts}
    wf = np.array([task.well_formed(p, y) for p, y in flat])
    exact = np.array([y.strip() == answer[p] for p, y in flat])
    gold = np.array([task.gold_reward(p, y) for p, y in flat])
    k = np.array([sum(a == b for a, b in zip(y.strip(), answer[p])) if w else -1 for (p, y), w in zip(flat, wf)])
    any_exact = np.mean([any(y.strip() == answer[p] for y in ys) for p, ys in zip(prompts, texts)])
    hist = {f"k={j}": float(np.mean(k == j)) for j in range(6)}
    return {"n": len(flat), "well_formed": float(wf.mean()), "exact": float(exact.mean()),
            "mean_gold": float(gold.mean()), "any_exact": float(any_exact), **hist}


def show(name, s):
    cells = "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in s.items())
    print(f"{name:<22} {cells}")


def main():
    task = get_task("reverse_task:Reverse")
    path = task.starting_policy(progress=True)
    print("starting policy:", path)
    model, _ = load_pretrained(path)
    tok = load_tokenizer(path)
    prompts = [r["prompt"] for r in task.eval_prompts]
    texts, _ = generate_texts(model, tok, prompts, jax.random.key(0), n=N, temperature=1.0,
                              max_new_tokens=task.max_new_tokens)
    greedy, _ = generate_texts(model, tok, prompts, jax.random.key(1), n=1, temperature=0.0,
                               max_new_tokens=task.max_new_tokens)
    rng = np.random.default_rng(0)
    data = [[task.sft_response(p, rng) for _ in range(32)] for p in prompts]
    refs = [[task.references[r["id"]]] for r in task.eval_prompts]
    print(f"{len(prompts)} eval prompts; any_exact = at least one exact among that row's samples per prompt")
    show(f"policy T=1 x{N}", stats(task, prompts, texts))
    show("policy greedy", stats(task, prompts, greedy))
    show("SFT data x32", stats(task, prompts, data))
    show("reference", stats(task, prompts, refs))


if __name__ == "__main__":
    main()

"""A small batch of preference pairs (PairTensors) for the train-step and LoRA tests."""

from __future__ import annotations

import numpy as np

from duel.train import PairTensors


def pair_tensors(seed: int = 0, b: int = 4, vocab: int = 61, prompt_len: int = 5, response_len: int = 4,
                 soft: bool = False) -> PairTensors:
    """b pairs (b >= 3) with left-padded prompts (row 1), ragged responses (rows 0 and 2) and
    reference log-prob sums; soft: random soft labels in [0.5, 1) and pair 2 masked (weight 0),
    else hard labels and every pair weighted 1."""
    rng = np.random.default_rng(seed)

    def ids(shape):
        return rng.integers(1, vocab, shape).astype(np.int32)

    pm = np.ones((b, prompt_len), np.int32)
    pm[1, :2] = 0
    cm = np.ones((b, response_len), np.int32)
    cm[2, 3:] = 0
    rm = np.ones((b, response_len), np.int32)
    rm[0, 2:] = 0
    prompt, chosen, rejected = ids((b, prompt_len)), ids((b, response_len)), ids((b, response_len))
    ref_chosen = -rng.uniform(10, 20, b).astype(np.float32)
    ref_rejected = -rng.uniform(10, 20, b).astype(np.float32)
    prob, weight = np.ones(b, np.float32), np.ones(b, np.float32)
    if soft:
        prob = rng.uniform(0.5, 1.0, b).astype(np.float32)
        weight[2] = 0.0
    return PairTensors(prompt_ids=prompt, prompt_mask=pm, chosen_ids=chosen, chosen_mask=cm, rejected_ids=rejected,
                       rejected_mask=rm, ref_chosen=ref_chosen, ref_rejected=ref_rejected, prob=prob, weight=weight)

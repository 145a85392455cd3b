"""One generator step as a function: sample M candidates, one frozen pass, choose the pair.

    pb = propose_pairs(policy, encoder, erm_params, prompts, key, sampling, candidates=M,
                       strategy="ee_ts", version=v, tokenizer=tok)

`encoder` is the frozen model: its `score` pass gives the reference log-probs and the features
phi(x, y) (mean final hidden state over the response tokens before the stop token) at once. With
`feature_encoder` (config `erm.encoder`: another frozen model with the same tokenizer) the
features come from that model's `score` pass instead; the reference log-probs stay `encoder`'s. The
ERM rewards the candidates, `duel.explore.select_pairs` picks (a, b); with mixed preference learning a
fraction `gamma` of the prompts is labelled by the ERM (`synthetic`, P(a > b) from the
ensemble), never by the oracle. Pure: the Ray actor in `actors/generator.py` holds state.
"""

from __future__ import annotations

import dataclasses
import time

import jax
import jax.numpy as jnp
import numpy as np

from duel.records import CandidateBatch, PairBatch, PromptBatch, pair_id


def frozen_pass(encoder, prompts: PromptBatch, tokens: np.ndarray, mask: np.ndarray, chunk: int = 64,
                finished: np.ndarray | None = None):
    """Reference log-probs [P, M, N] and features [P, M, H] of the candidates under `encoder`.

    finished [P, M] bool (GenerationOutput.finished): candidates that end with a stop token, which
    the feature leaves out; None = all of them."""
    from duel.sampling import score

    P, M, N = tokens.shape
    ids = np.repeat(prompts.input_ids, M, axis=0)
    pm = np.repeat(prompts.attention_mask, M, axis=0)
    rt, rm = tokens.reshape(P * M, N), mask.reshape(P * M, N)
    fin = np.ones(P * M, bool) if finished is None else np.asarray(finished, bool).reshape(P * M)
    lps, hid = [], []
    for lo in range(0, P * M, chunk):
        sc = score(encoder, ids[lo:lo + chunk], pm[lo:lo + chunk], rt[lo:lo + chunk], rm[lo:lo + chunk],
                   finished=fin[lo:lo + chunk])
        lps.append(np.asarray(sc.logprobs, np.float32))
        hid.append(np.asarray(sc.hidden, np.float32))
    return (np.concatenate(lps).reshape(P, M, N), np.concatenate(hid).reshape(P, M, -1))


def candidate_ids(tokens: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[P, M] int32: equal ids mark identical responses (the first index of each distinct one).

    Responses i and j are identical when their masks and masked tokens agree; the id of j is the
    smallest such i (equality is reflexive, so that is argmax over the first True)."""
    seq = np.where(mask != 0, tokens, -1)  # masked slots compare equal only to masked slots
    same = (seq[:, :, None, :] == seq[:, None, :, :]).all(-1)  # [P, M(i), M(j)]
    return np.argmax(same, axis=1).astype(np.int32)


def decode(tokenizer, tokens: np.ndarray, mask: np.ndarray) -> list[list[str]]:
    P, M, _ = tokens.shape
    flat = [tokens[p, m][mask[p, m] == 1].tolist() for p in range(P) for m in range(M)]
    if tokenizer is None:
        texts = [" ".join(map(str, t)) for t in flat]
    else:
        texts = tokenizer.batch_decode(flat, skip_special_tokens=True)
    return [texts[p * M:(p + 1) * M] for p in range(P)]


def _sample(policy, encoder, prompts, key, sampling, candidates: int, strategy: str):
    """M candidates -> (GenerationOutput, from_reference [P, M] bool).

    For xpo the last M // 2 candidates are sampled from the reference (the encoder) and marked
    in `from_reference`, which travels with the candidates (`CandidateBatch.from_reference`)."""
    from duel.sampling import generate

    out = generate(policy, prompts, key, sampling, candidates)
    from_ref = np.zeros(out.tokens.shape[:2], bool)
    if strategy == "xpo":
        k = candidates // 2
        ref = generate(encoder, prompts, jax.random.fold_in(key, 1), sampling, k)
        fields = {}
        for f in ("tokens", "mask", "policy_logprobs", "finished"):
            x = np.array(getattr(out, f))  # writable copy
            x[:, candidates - k:] = getattr(ref, f)
            fields[f] = x
        out = dataclasses.replace(out, **fields)
        from_ref[:, candidates - k:] = True
    return out, from_ref


def propose_pairs(policy, encoder, erm_params, prompts: PromptBatch, key, sampling, *,
                  candidates: int, strategy: str, version: int, tokenizer=None,
                  explore_options: dict | None = None, gamma: float = 0.0,
                  mixed_active: bool = False, min_confidence: float = 0.5, unconfident: str = "ask",
                  beta: float = 0.1, feature_encoder=None, feature_fn=None,
                  token_probs: bool = False, synthetic_by: str = "member",
                  words_weight: float | None = None, words_sd=None) -> PairBatch:
    """Sample, score, select: a PairBatch with timings in `diagnostics` (time_generate, time_select).

    With mixed preference learning active, `round(gamma * P)` prompts take an ERM-labelled pair
    (`duel.explore.synthetic_pairs`: best vs worst under a sampled member, or under the members'
    mean with `synthetic_by="mean"`, config `mixed.pair`) instead of the
    strategy's pair, flagged `synthetic` with the ensemble's P(a > b) in `synthetic_prob`.
    Where the ensemble is less sure than `min_confidence` (max(P, 1 - P) below it), the prompt
    keeps the strategy's pair for the oracle (`unconfident="ask"`) or stays synthetic with
    P = NaN (`"drop"`: no label, the learner gives it weight 0 and no counter counts it).
    `feature_encoder`: the model whose hidden states are phi (None = `encoder`). `feature_fn`
    (prompt texts, response texts [P][M]) -> phi [P, M, D] replaces the hidden states (the
    `erm.features: gold` diagnostic). `token_probs` (`erm.features: hidden_probs`): phi also holds
    the starting policy's per-token probabilities of the response (`duel.logprobs.token_prob_features`).
    `words_weight` (`erm.features: hidden_probs_words`, with `token_probs`): phi also holds the
    response's bag of words at that weight (`duel.logprobs.bag_of_words`, the starting policy's
    embedding table); `words_sd`: that table's `duel.logprobs.embedding_sd`, which a caller that
    proposes every step computes once (None: computed here).
    """
    from duel.ensemble import rewards
    from duel.explore import pair_probs, select_pairs, synthetic_mask, synthetic_pairs

    if unconfident not in ("ask", "drop"):
        raise ValueError(f"propose_pairs: unconfident must be 'ask' or 'drop', got {unconfident!r}")
    k_gen, k_sel, k_syn, k_mask = jax.random.split(key, 4)
    t0 = time.perf_counter()
    out, from_ref = _sample(policy, encoder, prompts, k_gen, sampling, candidates, strategy)
    ref_lp, feats = frozen_pass(encoder, prompts, out.tokens, out.mask, finished=out.finished)
    if feature_encoder is not None:  # erm.encoder: phi from another frozen model
        _, feats = frozen_pass(feature_encoder, prompts, out.tokens, out.mask, finished=out.finished)
    texts = decode(tokenizer, out.tokens, out.mask)
    if feature_fn is not None:
        feats = np.asarray(feature_fn(list(prompts.texts), texts), np.float32)
    elif token_probs:
        from duel.logprobs import token_prob_features

        feats = token_prob_features(feats, ref_lp, out.mask, sampling.max_new_tokens)
        if words_weight is not None:
            from duel.logprobs import bag_of_words, embedding_sd

            sd = embedding_sd(encoder.embed[...]) if words_sd is None else words_sd
            words = bag_of_words(encoder.embed[...], out.tokens, out.mask, sd)
            feats = np.concatenate([feats, np.float32(words_weight) * words], -1)
    t1 = time.perf_counter()
    ids = candidate_ids(out.tokens, out.mask)
    r = rewards(erm_params, jnp.asarray(feats))  # [K, P, M]
    opts = dict(explore_options or {}, candidate_ids=ids)
    if strategy == "apl":
        pol = (out.policy_logprobs * out.mask).sum(-1)
        opts["implicit_rewards"] = beta * (pol - (ref_lp * out.mask).sum(-1))
    if strategy == "xpo":
        opts["from_reference"] = from_ref
    pairs, diag = select_pairs(strategy, r, k_sel, **opts)
    pairs = np.array(pairs, np.int32)
    P = len(prompts)
    synthetic = synthetic_mask(k_mask, P, gamma, 0 if mixed_active else -1, 0)
    syn_prob = np.full(P, np.nan, np.float32)
    unsure = 0.0
    if synthetic.any():
        syn_pairs, prob = synthetic_pairs(r, k_syn, jnp.asarray(ids), by=synthetic_by)
        prob = np.asarray(prob, np.float32)
        sure = np.maximum(prob, 1.0 - prob) >= min_confidence
        unsure = float(np.mean(~sure[synthetic]))
        if unconfident == "ask":
            synthetic &= sure
        pairs[synthetic] = np.asarray(syn_pairs)[synthetic]
        syn_prob[synthetic] = np.where(sure, prob, np.nan)[synthetic]
    t2 = time.perf_counter()
    rows = np.arange(P)
    identical = ids[rows, pairs[:, 0]] == ids[rows, pairs[:, 1]]
    cand = CandidateBatch(prompts=prompts, tokens=out.tokens, mask=out.mask,
                          policy_logprobs=np.asarray(out.policy_logprobs, np.float32),
                          ref_logprobs=ref_lp, features=feats, texts=texts, version=int(version),
                          from_reference=from_ref)
    diagnostics = {k: float(np.asarray(v)) for k, v in diag.items() if np.ndim(v) == 0}
    diagnostics.update(time_generate=t1 - t0, time_select=t2 - t1)
    if mixed_active and gamma > 0:
        diagnostics["erm_unsure"] = unsure  # share of the ERM's prompts whose label was too unsure
    return PairBatch(candidates=cand, pairs=pairs, identical=identical, synthetic=synthetic,
                     strategy=strategy, diagnostics=diagnostics,
                     pair_ids=[pair_id(prompts.step, prompts.index + i) for i in rows],
                     synthetic_prob=syn_prob, erm_prob=np.asarray(pair_probs(r, pairs), np.float32))

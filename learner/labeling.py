"""The label stage of a step: ledger reuse, oracle queries within the budget, sampled labels.

    labeled, info = label_pairs(pb, step, seed=..., oracle=pool, stored=learner_lookup, ...)

Rows of a PairBatch fall in three groups: synthetic (the ERM's P(a > b), never sent to the
oracle), reused (the ledger already holds this pair id with the same responses: a resumed run
does not pay again) and paid (one oracle query each). Binary labels are drawn for all rows at
once from a generator keyed by (seed, step), so reuse never shifts the random stream; a reused
row keeps its stored label.
"""

from __future__ import annotations

import time

import numpy as np

from actors.oracle import OracleUnavailable
from duel.keys import KEY_LABEL, step_rng
from duel.records import LabeledBatch, PairBatch


def _response(pb: PairBatch, p: int, j: int) -> list[int]:
    c = pb.candidates
    return c.tokens[p, j][c.mask[p, j] == 1].astype(int).tolist()


def label_pairs(pb: PairBatch, step: int, *, seed: int, oracle, stored: dict,
                budget_left: int | None = None, label_mode: str = "bt", flip: float = 0.0):
    """-> (LabeledBatch, info) with info = {"time_oracle", "paid", "reused", "cut"}.

    oracle: anything with `label(prompts, a, b) -> (prob_a, metadata)` (the OraclePool).
    stored: {pair_id: ledger row} for pair ids the ledger already holds.
    budget_left: oracle queries still allowed (reused rows count: they were paid before a
    stop); paid rows beyond it are dropped from the batch.
    When the oracle gives up (OracleUnavailable), the exception's `labeled` is the LabeledBatch
    of the rows it answered before: paid, for the caller to put in the ledger.
    """
    P = len(pb.pairs)
    synthetic = np.asarray(pb.synthetic, bool)
    reused = np.zeros(P, bool)
    for p in np.flatnonzero(~synthetic):
        row = stored.get(pb.pair_ids[p])
        if row is None:
            continue
        a, b = (int(x) for x in pb.pairs[p])
        if row["tokens_a"] != _response(pb, p, a) or row["tokens_b"] != _response(pb, p, b):
            raise ValueError(
                f"ledger: pair {pb.pair_ids[p]!r} is stored with other responses than the ones "
                f"sampled now (version {row['version']} vs {pb.version}); the resumed run is not "
                "replaying the stopped one")
        reused[p] = True
    paid = ~synthetic & ~reused
    cut = 0
    if budget_left is not None:  # reused labels were paid queries too: they use budget
        budget_left -= int(reused.sum())
    if budget_left is not None and paid.sum() > budget_left:
        over = np.flatnonzero(paid)[max(budget_left, 0):]
        keep = np.setdiff1d(np.arange(P), over)
        cut = len(over)
        pb = pb.take(keep)
        synthetic, reused, paid = synthetic[keep], reused[keep], paid[keep]
        P = len(keep)

    prob = np.full(P, np.nan, np.float32)
    meta: list[dict] = [{} for _ in range(P)]
    if pb.synthetic_prob is not None:
        prob[synthetic] = pb.synthetic_prob[synthetic]
    for p in np.flatnonzero(reused):
        row = stored[pb.pair_ids[p]]
        prob[p] = row["prob_a"]
        meta[p] = dict(row.get("metadata") or {}, reused=True)
    t0 = time.perf_counter()
    rows = np.flatnonzero(paid)
    if len(rows):
        c = pb.candidates
        texts = c.prompts.texts
        try:
            pa, pm = oracle.label([texts[p] for p in rows],
                                  [c.texts[p][pb.pairs[p, 0]] for p in rows],
                                  [c.texts[p][pb.pairs[p, 1]] for p in rows])
        except OracleUnavailable as e:  # the answers received before it gave up were paid
            ok = np.zeros(len(rows), bool) if e.answered is None else np.asarray(e.answered, bool)
            got = rows[ok]
            for i in np.flatnonzero(ok):
                prob[rows[i]], meta[rows[i]] = e.prob_a[i], e.metadata[i]
            label = draw_labels(prob, pb, reused, stored, seed, step, label_mode, flip)
            e.labeled = LabeledBatch(pairs=pb.take(got), prob_a=prob[got], label=label[got],
                                     metadata=[meta[p] for p in got], from_ledger=np.zeros(len(got), bool))
            raise
        prob[rows] = pa
        for i, p in enumerate(rows):
            meta[p] = pm[i]
    t_oracle = time.perf_counter() - t0

    label = draw_labels(prob, pb, reused, stored, seed, step, label_mode, flip)
    labeled = LabeledBatch(pairs=pb, prob_a=prob, label=label, metadata=meta, from_ledger=reused)
    return labeled, {"time_oracle": t_oracle, "paid": int(paid.sum()), "reused": int(reused.sum()),
                     "cut": cut}


def draw_labels(prob, pb: PairBatch, reused, stored: dict, seed: int, step: int, label_mode: str,
                flip: float) -> np.ndarray:
    """Binary labels of every row from one generator keyed by (seed, step): row p's label depends
    on prob[p] alone, so a row's label is the same whether the others were answered or not.
    Reused rows keep their stored label."""
    from duel.oracles import sample_labels

    rng = step_rng(seed, step, KEY_LABEL)
    label = sample_labels(np.nan_to_num(prob, nan=0.5), rng, mode=label_mode, flip=flip).astype(np.int8)
    for p in np.flatnonzero(reused):
        label[p] = int(stored[pb.pair_ids[p]]["label"])
    return label


def synthetic_vs_gold(labeled: LabeledBatch, rewards) -> dict:
    """The ERM's synthetic labels against a gold reward `rewards(prompts, responses) -> [n]`:
    {"synthetic_gold_ties": share of synthetic pairs with equal gold rewards,
     "synthetic_gold_agree": share of the others whose label (the response the policy is
     trained towards) has the higher gold reward,
     "synthetic_gold_chosen": mean gold reward of that response,
     "synthetic_gold_mean": mean gold reward of all the prompt's candidates (the policy's level),
     "synthetic_gold_best": mean of the prompt's best candidate's gold reward (what the pair
     could have taught at most)} over the synthetic rows with a label ({} without any; no
     "agree" when every pair ties)."""
    pb = labeled.pairs
    syn = np.flatnonzero(labeled.erm_labelled)
    if not len(syn):
        return {}
    c = pb.candidates
    M = len(c.texts[syn[0]])
    every = np.asarray(rewards([c.prompts.texts[p] for p in syn for _ in range(M)],
                               [t for p in syn for t in c.texts[p]]), np.float64).reshape(len(syn), M)
    rows = np.arange(len(syn))
    ra, rb = every[rows, pb.pairs[syn, 0]], every[rows, pb.pairs[syn, 1]]
    label = np.asarray(labeled.label, bool)[syn]
    differ = ra != rb
    out = {"synthetic_gold_ties": float(np.mean(~differ)),
           "synthetic_gold_chosen": float(np.mean(np.where(label, ra, rb))),
           "synthetic_gold_mean": float(np.mean(every)), "synthetic_gold_best": float(np.mean(every.max(axis=1)))}
    if differ.any():
        out["synthetic_gold_agree"] = float(np.mean((ra > rb)[differ] == label[differ]))
    return out


def ensemble_vs_oracle(labeled: LabeledBatch, oracle_rows: np.ndarray, sure_at: float) -> dict:
    """The ensemble's prediction against the oracle's label on this step's oracle-labelled pairs
    (`oracle_rows` [P] bool: answered, not synthetic, not identical), made before the label was
    known, so it is a held-out check of the ensemble that needs no gold reward (a human oracle
    too). Counts for the train row, which sum over steps:
    {"erm_asked": pairs with a prediction, "erm_asked_agree": those whose preferred side
     (P(a > b) > 0.5) is the oracle's label, "erm_asked_sure": those where the ensemble was at
     least `sure_at` sure (as sure as it must be to label a pair itself), "erm_asked_sure_agree"};
    {} without predictions or such pairs."""
    prob = labeled.pairs.erm_prob
    if prob is None:
        return {}
    prob = np.asarray(prob, np.float64)
    rows = np.asarray(oracle_rows, bool) & ~np.isnan(prob)
    if not rows.any():
        return {}
    p = prob[rows]
    agree = (p > 0.5) == np.asarray(labeled.label, bool)[rows]
    sure = np.maximum(p, 1.0 - p) >= sure_at
    return {"erm_asked": float(rows.sum()), "erm_asked_agree": float(agree.sum()),
            "erm_asked_sure": float(sure.sum()), "erm_asked_sure_agree": float((agree & sure).sum())}

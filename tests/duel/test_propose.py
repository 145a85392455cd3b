"""duel.propose.candidate_ids: the vectorised duplicate finder equals a plain loop."""

import numpy as np

from duel.propose import candidate_ids


def _plain(tokens, mask):
    P, M, _ = tokens.shape
    ids = np.tile(np.arange(M, dtype=np.int32), (P, 1))
    for p in range(P):
        for j in range(M):
            for i in range(j):
                if (mask[p, i] == mask[p, j]).all() and (tokens[p, i] * mask[p, i] == tokens[p, j] * mask[p, j]).all():
                    ids[p, j] = i
                    break
    return ids


def test_candidate_ids_equals_plain_loop_with_duplicates():
    rng = np.random.default_rng(0)
    P, M, N = 6, 8, 5
    tokens = rng.integers(0, 3, size=(P, M, N))  # tiny vocabulary: many duplicates
    lengths = rng.integers(1, N + 1, size=(P, M))
    mask = (np.arange(N) < lengths[..., None]).astype(np.int32)
    tokens[:, 3] = tokens[:, 1]
    mask[:, 3] = mask[:, 1]  # forced duplicate: id of 3 is at most 1
    got = candidate_ids(tokens, mask)
    np.testing.assert_array_equal(got, _plain(tokens, mask))
    assert (got[:, 3] <= 1).all() and len(np.unique(got)) < P * M


def test_same_tokens_different_length_are_distinct():
    tokens = np.array([[[5, 0, 0], [5, 0, 0]]])
    mask = np.array([[[1, 0, 0], [1, 1, 0]]])  # "5" vs "5 0"
    np.testing.assert_array_equal(candidate_ids(tokens, mask), [[0, 1]])


def test_concat_pairs_keeps_which_candidates_came_from_the_reference():
    from duel.records import CandidateBatch, PairBatch, PromptBatch

    def part(P, N, ref_col):
        M = 4
        prompts = PromptBatch([f"p{i}" for i in range(P)], ["x"] * P, np.ones((P, 2), np.int32),
                              np.ones((P, 2), np.int32))
        z = np.zeros((P, M, N), np.float32)
        from_ref = np.zeros((P, M), bool)
        from_ref[:, ref_col] = True
        cand = CandidateBatch(prompts, np.ones((P, M, N), np.int32), np.ones((P, M, N), np.int32), z, z,
                              np.zeros((P, M, 3), np.float32), [[""] * M] * P, version=2, from_reference=from_ref)
        return PairBatch(cand, np.zeros((P, 2), np.int32), np.zeros(P, bool), np.zeros(P, bool), "xpo")

    got = PairBatch.concat([part(2, 3, 3), part(1, 5, 0)]).candidates.from_reference
    np.testing.assert_array_equal(got, [[0, 0, 0, 1], [0, 0, 0, 1], [1, 0, 0, 0]])


def test_take_and_concat_keep_the_ensembles_pair_probability():
    from duel.records import CandidateBatch, PairBatch, PromptBatch

    def part(P, erm_prob):
        M, N = 2, 3
        prompts = PromptBatch([f"p{i}" for i in range(P)], ["x"] * P, np.ones((P, 2), np.int32),
                              np.ones((P, 2), np.int32))
        z = np.zeros((P, M, N), np.float32)
        cand = CandidateBatch(prompts, np.ones((P, M, N), np.int32), np.ones((P, M, N), np.int32), z, z,
                              np.zeros((P, M, 3), np.float32), [[""] * M] * P, version=0)
        return PairBatch(cand, np.zeros((P, 2), np.int32), np.zeros(P, bool), np.zeros(P, bool), "ee_ts",
                         pair_ids=[f"s0-{i}" for i in range(P)], erm_prob=erm_prob)

    both = PairBatch.concat([part(2, np.array([0.1, 0.7], np.float32)), part(1, None)])
    np.testing.assert_array_equal(both.erm_prob, np.float32([0.1, 0.7, np.nan]))
    np.testing.assert_array_equal(both.take(np.array([1])).erm_prob, np.float32([0.7]))
    assert PairBatch.concat([part(1, None)]).erm_prob is None  # one shard: the batch itself
    np.testing.assert_array_equal(PairBatch.concat([part(1, None), part(2, None)]).erm_prob, np.full(3, np.nan, np.float32))

"""ERM probe: does the epistemic reward model predict which candidate the oracle prefers?

Samples M candidates per prompt from the demo's starting policy (launch/configs/demo.yaml, task
`arithmetic`) exactly as a generator does (duel.propose), labels random distinct pairs with the
task's rule oracle (gold reward through Bradley-Terry, binary labels as the learner gets them),
trains the ERM on n labelled pairs as the learner does (duel.ensemble ReplayBuffer + update:
prompts_per_step pairs per step, then erm.steps_per_update Adam steps on batches of 64 from the
buffer) and scores held-out pairs (every distinct pair of disjoint prompts):

    acc_gold     sign of the ensemble-mean reward difference vs the gold preference (non-tie pairs)
    acc_bt       expected accuracy against a Bradley-Terry label (ceiling: mean max(p, 1 - p))
    ece, mae     calibration of sigmoid(mean delta) against the true P(a > b)
    sd_wrong/sd_right, auroc_sd   ensemble spread (std over members) of the difference on wrong
                 vs right pairs (the premise of ee_ts / bai_ts: members disagree where the mean is wrong)
    signdis_*, auroc_signdis      the same for the fraction of members whose sign differs from the mean's
    top1         best-of-M under the ensemble mean picks a gold-best candidate (random: top1_rand)

Feature choices: `last` (post-norm hidden state at the last response token, the stop token; what
duel.propose used before this probe), `last_digit` (the token before the stop token), `mean` (mean over
response tokens), `mean_nostop` (mean without the stop token: duel.logprobs.response_feature, what
duel.propose uses now; checked equal to the generator's phi), their z-scored versions (mean/std of the training candidates), and a
`gold_onehot` ceiling (one-hot |y - sum| bucket: what a perfect feature would give this ERM;
arithmetic only), and `gold` (any task: the gold reward itself, as `erm.features: gold` gives it).
From the starting policy's per-token log-probs by position: `lp_pos`, `p_pos` (2 p - 1, what
`erm.features: hidden_probs` adds), `mean_nostop+p_pos` (unweighted) and `hidden_probs` (the
library's, weighted); `h_pos` (per-position hidden states, flattened), `emb_mean` (mean input
embedding), `hidden+emb`, `max` (max-pooled hidden states over the response), `hidden+max`, `sum` (summed hidden states),
`emb_sum` (summed input embeddings: a bag of words with its counts), `emb_sum_e` (the same over the
embedding table's per-unit sd), `hidden+sum`, `hidden_probs+emb_sum_z`, `hidden_probs+emb_sum_e`
(and `hidden_probs+0.5emb_sum_e`, `hidden_probs+0.25emb_sum_e`: the bag of words at that weight);
NAME_z for the z-scored ones.
`long` rows train the same ERM for extra Adam steps (under-training vs bad features).
`--encoder NAME=PATH` (repeatable) adds the feature `enc:NAME`: phi from that model directory as
`erm.encoder: PATH` gives it (duel.propose.frozen_pass on the same candidates; checked with
learner.setup.check_encoder first); `--out` names the result file (bench/erm_encoder.py builds
encoders for the arithmetic task).

    .venv/bin/python bench/erm_probe.py            # CPU, a few minutes
    .venv/bin/python bench/erm_probe.py --check    # tiny sizes, seconds (tests); writes nothing
    .venv/bin/python bench/erm_probe.py --features mean_nostop,gold_onehot \
        --encoder big=$(.venv/bin/python bench/erm_encoder.py big | cut -d' ' -f2) --out erm_encoder_probe
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax
import jax.numpy as jnp
import numpy as np

from bench.common import print_table, write_result

ERM_BATCH = 64  # learner.learner.ERM_BATCH (not imported: learner.learner pulls in Ray)


# ---------------------------------------------------------------------------- pure metrics


def pair_accuracy(delta, target) -> float:
    """Fraction of pairs where sign(delta) agrees with target (1 = a preferred, 0 = b).

    delta [B] predicted r(a) - r(b); a zero delta counts as predicting b (as erm_accuracy)."""
    delta, target = np.asarray(delta), np.asarray(target)
    if delta.shape != target.shape or delta.ndim != 1 or len(delta) == 0:
        raise ValueError(f"pair_accuracy: delta and target must be the same non-empty [B], got "
                         f"{delta.shape} and {target.shape}")
    return float(np.mean((delta > 0) == (target > 0.5)))


def expected_bt_accuracy(delta, p_true) -> float:
    """Expected accuracy against a label ~ Bernoulli(p_true): p if a is predicted, else 1 - p."""
    delta, p_true = np.asarray(delta), np.asarray(p_true, np.float64)
    return float(np.mean(np.where(delta > 0, p_true, 1.0 - p_true)))


def ece(p_hat, p_true, bins: int = 10) -> float:
    """Expected calibration error of p_hat against the true probabilities (equal-width bins)."""
    p_hat, p_true = np.asarray(p_hat, np.float64), np.asarray(p_true, np.float64)
    idx = np.minimum((p_hat * bins).astype(int), bins - 1)
    err = 0.0
    for b in range(bins):
        sel = idx == b
        if sel.any():
            err += sel.mean() * abs(p_hat[sel].mean() - p_true[sel].mean())
    return float(err)


def auroc(score, positive) -> float:
    """P(score of a random positive > score of a random negative), ties 1/2; nan if a class is empty."""
    score, positive = np.asarray(score, np.float64), np.asarray(positive, bool)
    pos, neg = score[positive], score[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    allv = np.concatenate([pos, neg])[order]
    # average ranks over ties
    _, inv, counts = np.unique(allv, return_inverse=True, return_counts=True)
    cum = np.cumsum(counts) - (counts - 1) / 2.0
    ranks[order] = cum[inv]
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def tie_stats(gold, ids) -> dict:
    """How informative M candidates are: gold [P, M] rewards, ids [P, M] (equal = identical text)."""
    P, M = gold.shape
    iu, ju = np.triu_indices(M, 1)
    same_text = ids[:, iu] == ids[:, ju]
    same_gold = gold[:, iu] == gold[:, ju]
    n_best = (gold == gold.max(1, keepdims=True)).sum(1)
    return {
        "pairs_per_prompt": int(len(iu)),
        "frac_pairs_identical_text": float(same_text.mean()),
        "frac_pairs_distinct_text_tied_gold": float((~same_text & same_gold).mean()),
        "frac_pairs_differ_gold": float((~same_gold).mean()),
        "frac_prompts_all_tied_gold": float((gold == gold[:, :1]).all(1).mean()),
        "mean_distinct_gold_values": float(np.mean([len(np.unique(g)) for g in gold])),
        "frac_prompts_with_exact_answer": float((gold == 5.0).any(1).mean()),
        "frac_candidates_exact": float((gold == 5.0).mean()),
        "frac_candidates_malformed": float((gold < 0).mean()),
        "random_pick_is_best": float(np.mean(n_best / M)),
    }


def gold_onehot(prompts: list[str], texts: list[list[str]]) -> np.ndarray:
    """Ceiling feature [P, M, 23]: one-hot of clip(y - sum, -10, 10), malformed, and exact."""
    from duel.tasks.arithmetic import _ANSWER, answer_of

    P, M = len(texts), len(texts[0])
    out = np.zeros((P, M, 23), np.float32)
    for p in range(P):
        c = answer_of(prompts[p])
        for m, t in enumerate(texts[p]):
            t = t.strip()
            if not _ANSWER.match(t):
                out[p, m, 21] = 1.0
            else:
                out[p, m, int(np.clip(int(t) - c, -10, 10)) + 10] = 1.0
                out[p, m, 22] = float(int(t) == c)
    return out


# ---------------------------------------------------------------------------- candidates


def response_features(encoder, prompt_ids, prompt_mask, tokens, mask, finished, chunk: int = 256) -> dict:
    """Alternative phi(x, y) from the frozen encoder: [P, M, H] for last / last_digit / mean / mean_nostop."""
    from duel.logprobs import bag_of_words, concat_prompt_response, embedding_sd, response_feature

    P, M, N = tokens.shape
    ids = np.repeat(prompt_ids, M, axis=0)
    pm = np.repeat(prompt_mask, M, axis=0)
    rt, rm = tokens.reshape(P * M, N), mask.reshape(P * M, N)
    fin = np.asarray(finished, bool).reshape(P * M)
    Tp = ids.shape[1]
    emb_sd = embedding_sd(encoder.embed[...])

    @jax.jit
    def feats(ids, pm, rt, rm, fin):
        x, xm, pos = concat_prompt_response(ids, pm, rt, rm)
        h_all = encoder.hidden_states(x, xm, pos)
        h = h_all[:, Tp:]  # [B, N, H] response positions
        n = jnp.sum(rm > 0, axis=1)
        take = lambda i: jnp.take_along_axis(h, jnp.clip(i, 0, N - 1)[:, None, None], axis=1)[:, 0]
        w = (rm > 0).astype(h.dtype)[..., None]
        e = jnp.take(encoder.embed[...], rt, axis=0).astype(h.dtype)  # input embeddings [B, N, H]
        return {"last": take(n - 1), "last_digit": take(n - 2),
                # a bag of words through the embedding table: mean input embedding of the response
                "emb_mean": (e * w).sum(1) / jnp.maximum(w.sum(1), 1.0),
                "mean": (h * w).sum(1) / jnp.maximum(w.sum(1), 1.0),
                # max over response tokens (each unit's strongest activation: a presence read
                # that a mean dilutes with length); 0 for an empty response
                "max": jnp.where(w.sum(1) > 0, jnp.max(jnp.where(w > 0, h, -jnp.inf), axis=1), 0.0),
                # sums over response tokens (a reward that adds per-token terms, as `style`'s,
                # `sort`'s and `reverse`'s do, is linear in a sum; a mean divides it by the length)
                "sum": (h * w).sum(1), "emb_sum": (e * w).sum(1),
                # the same bag of words over the embedding table's own per-unit sd (a statistic of
                # the model, none of the task): the library's, `erm.features: hidden_probs_words`
                "emb_sum_e": bag_of_words(encoder.embed[...], rt, rm, emb_sd),
                "h_pos": (h * w).reshape(h.shape[0], -1),  # per-position states, flattened [B, N*H]
                # the library's phi: stop token out (kept when it is the only token)
                "mean_nostop": response_feature(h_all, Tp, rm, fin)}

    parts = [feats(ids[lo:lo + chunk], pm[lo:lo + chunk], rt[lo:lo + chunk], rm[lo:lo + chunk],
                   fin[lo:lo + chunk]) for lo in range(0, P * M, chunk)]
    return {k: np.concatenate([np.asarray(p[k], np.float32) for p in parts]).reshape(P, M, -1)
            for k in parts[0]}


def sample_candidates(core, rows: list[dict], tokenizer, seed: int, candidates: int, oracle,
                      chunk: int = 128) -> dict:
    """M candidates per prompt as a generator samples them, with features, gold rewards, ids."""
    from duel.data import encode_prompts
    from duel.propose import _sample, candidate_ids, decode, frozen_pass

    batch, _ = encode_prompts(tokenizer, rows, max_prompt_len=1024)
    out = {k: [] for k in ("tokens", "mask", "phi", "ids", "logprob", "finished", "ref_lp")}
    texts = []
    for lo in range(0, len(rows), chunk):
        pr = SimpleNamespace(input_ids=batch.input_ids[lo:lo + chunk],  # PromptBatch-like
                             attention_mask=batch.attention_mask[lo:lo + chunk])
        g, _ = _sample(core.policy, core.encoder, pr, jax.random.key(seed * 100003 + lo), core.sampling,
                       candidates, "passive")
        ref_lp, phi = frozen_pass(core.encoder, pr, g.tokens, g.mask, finished=g.finished)
        out["finished"].append(np.asarray(g.finished))
        out["tokens"].append(np.asarray(g.tokens))
        out["mask"].append(np.asarray(g.mask))
        out["phi"].append(phi)
        out["ids"].append(candidate_ids(np.asarray(g.tokens), np.asarray(g.mask)))
        out["logprob"].append((ref_lp * g.mask).sum(-1))
        out["ref_lp"].append(ref_lp * g.mask)
        texts += decode(tokenizer, np.asarray(g.tokens), np.asarray(g.mask))
    N = max(t.shape[-1] for t in out["tokens"])
    pad = lambda x: np.pad(x, [(0, 0), (0, 0), (0, N - x.shape[-1])])
    res = {k: np.concatenate([pad(x) for x in v] if k in ("tokens", "mask", "ref_lp") else v) for k, v in out.items()}
    prompts = [r["prompt"] for r in rows]
    P, M = res["ids"].shape
    res["gold"] = oracle.rewards(np.repeat(prompts, M).tolist(), sum(texts, [])).reshape(P, M)
    res["texts"], res["prompts"] = texts, prompts
    res["prompt_ids"], res["prompt_mask"] = batch.input_ids, batch.attention_mask
    return res


def random_pairs(ids, rng) -> tuple[np.ndarray, np.ndarray]:
    """One random distinct-text pair per prompt (as `passive`); prompts with one distinct text
    are dropped -> (rows, pairs [R, 2])."""
    rows, pairs = [], []
    for p in range(len(ids)):
        a = int(rng.integers(ids.shape[1]))
        others = np.flatnonzero(ids[p] != ids[p, a])
        if len(others):
            rows.append(p)
            pairs.append((a, int(rng.choice(others))))
    return np.asarray(rows), np.asarray(pairs, np.int64).reshape(-1, 2)


def all_pairs(ids) -> tuple[np.ndarray, np.ndarray]:
    """Every distinct-text pair (i < j) of every prompt -> (rows, pairs)."""
    M = ids.shape[1]
    iu, ju = np.triu_indices(M, 1)
    keep = ids[:, iu] != ids[:, ju]
    rows, k = np.nonzero(keep)
    return rows, np.stack([iu[k], ju[k]], 1)


# ---------------------------------------------------------------------------- ERM as the learner


def train_erm(erm_cfg, fa, fb, labels, *, seed: int, per_step: int, steps_per_update: int,
              buffer_size: int, extra_steps: int = 0):
    """ERM trained as learner.Learner.update does: per learner step, `per_step` new labelled
    pairs into the ReplayBuffer, then `steps_per_update` Adam steps on batches of ERM_BATCH drawn
    from it (anchor weight N = pairs so far). `extra_steps` more Adam steps after the data ends."""
    from duel.ensemble import ERM, ReplayBuffer, update
    from duel.keys import KEY_LEARN, step_key

    erm = ERM.create(fa.shape[1], erm_cfg, step_key(seed, 0, KEY_LEARN, 1))
    buf = ReplayBuffer(buffer_size, fa.shape[1])
    step = 0
    for lo in range(0, len(fa), per_step):
        buf.add(fa[lo:lo + per_step], fb[lo:lo + per_step], labels[lo:lo + per_step])
        k_erm, k_buf = jax.random.split(step_key(seed, step, KEY_LEARN))
        x, y, p = buf.sample(k_buf, ERM_BATCH, num_batches=steps_per_update)
        erm, _ = update(erm, x, y, p, buf.total, k_erm, steps=steps_per_update)
        step += 1
    for s in range(0, extra_steps, 250):
        k_erm, k_buf = jax.random.split(step_key(seed, step, KEY_LEARN))
        x, y, p = buf.sample(k_buf, ERM_BATCH, num_batches=min(250, extra_steps - s))
        erm, _ = update(erm, x, y, p, buf.total, k_erm, steps=x.shape[0])
        step += 1
    return erm


def held_out_metrics(r, gold, rows, pairs, tau: float) -> dict:
    """r [K, P, M] member rewards of the test candidates; pairs (rows, [R, 2]) distinct texts."""
    from duel.oracles.base import bt_prob

    ra, rb = r[:, rows, pairs[:, 0]], r[:, rows, pairs[:, 1]]  # [K, R]
    d_k = ra - rb
    d = d_k.mean(0)
    ga, gb = gold[rows, pairs[:, 0]], gold[rows, pairs[:, 1]]
    p_true = bt_prob(ga, gb, tau).astype(np.float64)
    p_hat = 1.0 / (1.0 + np.exp(-d))
    nt = ga != gb
    wrong = (d > 0) != (ga > gb)
    sd = d_k.std(0)
    sign_dis = (np.sign(d_k) != np.sign(d)[None]).mean(0)
    mean_r = r.mean(0)
    pick = mean_r.argmax(-1)
    best = gold.max(-1)
    has_best = (gold != best[:, None]).any(-1)  # prompts where the pick can be wrong
    return {
        "acc_gold": pair_accuracy(d[nt], (ga > gb)[nt].astype(float)),
        "acc_bt": expected_bt_accuracy(d, p_true),
        "acc_bt_ceiling": float(np.mean(np.maximum(p_true, 1 - p_true))),
        "ece": ece(p_hat, p_true),
        "mae": float(np.mean(np.abs(p_hat - p_true))),
        "sd_wrong": float(sd[nt & wrong].mean()) if (nt & wrong).any() else float("nan"),
        "sd_right": float(sd[nt & ~wrong].mean()) if (nt & ~wrong).any() else float("nan"),
        "auroc_sd": auroc(sd[nt], wrong[nt]),
        "auroc_signdis": auroc(sign_dis[nt], wrong[nt]),
        "signdis_wrong": float(sign_dis[nt & wrong].mean()) if (nt & wrong).any() else float("nan"),
        "signdis_right": float(sign_dis[nt & ~wrong].mean()) if (nt & ~wrong).any() else float("nan"),
        "top1": float(np.mean(gold[has_best, pick[has_best]] == best[has_best])),
        "top1_regret": float(np.mean(best - gold[np.arange(len(gold)), pick])),
        "pairs": int(len(d)), "pairs_non_tie": int(nt.sum()),
    }


def encoder_features(cfg, source: str, model_dir: str, name: str, path: str, tr: dict, te: dict,
                     feats: dict) -> dict:
    """feats[split]["enc:NAME"] = phi [P, M, H] of the candidates from the model at `path`, as a
    generator with `erm.encoder: PATH` computes it -> a description of the encoder."""
    import json

    from launch.presets import load_config
    from duel.models import load_pretrained
    from duel.propose import frozen_pass
    from learner.setup import check_encoder

    check_encoder(load_config(source, [f"erm.encoder={path}"]), model_dir)  # loads, same tokenizer
    enc, ecfg = load_pretrained(Path(path).expanduser(), dtype=getattr(jnp, cfg.policy.compute_dtype))
    for split, d in (("train", tr), ("test", te)):
        pr = SimpleNamespace(input_ids=d["prompt_ids"], attention_mask=d["prompt_mask"])
        _, phi = frozen_pass(enc, pr, d["tokens"], d["mask"], finished=d["finished"])
        feats[split][f"enc:{name}"] = phi
    info = Path(path).expanduser() / "task.json"
    return {"path": str(path), "hidden_size": int(ecfg.hidden_size), "num_layers": int(ecfg.num_layers),
            "task_json": json.loads(info.read_text()) if info.is_file() else None}


# ---------------------------------------------------------------------------- main


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="launch/configs/demo.yaml")
    ap.add_argument("--ns", default="64,256,1024", help="labelled training pairs")
    ap.add_argument("--seeds", type=int, default=3, help="ERM seeds (data order, labels, init)")
    ap.add_argument("--test-prompts", type=int, default=1000)
    ap.add_argument("--long-steps", type=int, default=2000, help="extra Adam steps of the `long` rows (0: no long rows)")
    ap.add_argument("--features", default="last,last_z,last_digit,last_digit_z,mean,mean_z,mean_nostop,gold_onehot")
    ap.add_argument("--encoder", action="append", default=[], metavar="NAME=PATH",
                    help="also measure phi from this model directory (erm.encoder), as feature enc:NAME")
    ap.add_argument("--out", default="erm_probe", help="result file name in bench/results (no .json)")
    ap.add_argument("--check", action="store_true", help="tiny sizes; nothing written to bench/results")
    args = ap.parse_args(argv)
    if args.check:
        args.ns, args.seeds, args.test_prompts, args.long_steps = "16,32", 1, 24, 8

    from actors.generator import GeneratorCore, GeneratorSpec
    from launch.presets import load_config
    from duel.oracles.rule import RuleOracle
    from duel.tasks import get_task
    from duel.logprobs import centred_token_probs, token_prob_features
    from learner.setup import model_dir_for

    t0 = time.perf_counter()
    cfg = load_config(args.config)
    task = get_task(cfg.task)
    model_dir = model_dir_for(cfg, task)
    tau = float(cfg.oracle.options.get("tau", 1.0))
    oracle = RuleOracle(task.gold_reward, tau=tau)
    core = GeneratorCore(model_dir, GeneratorSpec.from_config(cfg, strategy="passive", explore_options={},
                                                              gamma=0.0))
    ns = [int(x) for x in args.ns.split(",")]
    rows = list(task.train_prompts)
    n_train = int(max(ns) * 1.15) + 16
    if n_train + args.test_prompts <= len(rows):
        train_rows, test_rows = rows[:n_train], rows[n_train:n_train + args.test_prompts]
    else:  # a small prompt set (style: 144): train prompts repeat (fresh samples each time, as a
        # run's do), the held-out pairs come from the task's eval prompts, which training never sees
        train_rows = (rows * -(-n_train // len(rows)))[:n_train]
        test_rows = list(task.eval_prompts)[:args.test_prompts]
        print(f"{cfg.task}: {len(rows)} training prompts, repeated to {n_train}; held-out pairs from "
              f"{len(test_rows)} eval prompts", flush=True)
    tr = sample_candidates(core, train_rows, core.tokenizer, 1, cfg.candidates, oracle)
    te = sample_candidates(core, test_rows, core.tokenizer, 2, cfg.candidates, oracle)
    t_sample = time.perf_counter() - t0

    # feature variants [P, M, F]; the generator's phi must equal our `mean_nostop`
    feats = {}
    for name, d in (("train", tr), ("test", te)):
        alt = response_features(core.encoder, d["prompt_ids"], d["prompt_mask"], d["tokens"], d["mask"],
                                d["finished"])
        gap = float(np.max(np.abs(alt["mean_nostop"] - d["phi"])))
        if gap > 1e-3:
            raise AssertionError(f"bench/erm_probe.py: recomputed `mean_nostop` differs from duel.propose "
                                 f"features by {gap} ({name})")
        alt["mean_nostop"] = d["phi"]
        if "gold_onehot" in args.features.split(","):  # arithmetic's answers only
            alt["gold_onehot"] = gold_onehot(d["prompts"], d["texts"])
        # any task: phi = [gold reward], what `erm.features: gold` gives the ERM
        alt["gold"] = np.asarray([[[task.gold_reward(p, y)] for y in ys] for p, ys in zip(d["prompts"], d["texts"])],
                                 np.float32)
        # the frozen starting policy's per-token log-probs of the response, by position (0 past its end)
        alt["lp_pos"] = np.asarray(d["ref_lp"], np.float32)
        # the same as probabilities centred without statistics (2 p - 1), the block `hidden_probs` adds
        alt["p_pos"] = centred_token_probs(d["ref_lp"], d["mask"], cfg.sampling.max_new_tokens)
        alt["mean_nostop+p_pos"] = np.concatenate([alt["mean_nostop"], alt["p_pos"]], -1)  # unweighted
        # the library's `erm.features: hidden_probs` (both blocks at equal weight)
        alt["hidden_probs"] = token_prob_features(alt["mean_nostop"], d["ref_lp"], d["mask"],
                                                  cfg.sampling.max_new_tokens)
        alt["hidden+emb"] = np.concatenate([alt["mean_nostop"], alt["emb_mean"]], -1)
        alt["hidden+max"] = np.concatenate([alt["mean_nostop"], alt["max"]], -1)
        alt["hidden+sum"] = np.concatenate([alt["mean_nostop"], alt["sum"]], -1)
        feats[name] = alt
    encoders = {}
    for item in args.encoder:
        name, _, path = item.rpartition("=")
        name = name or Path(path).name
        encoders[name] = encoder_features(cfg, args.config, model_dir, name, path, tr, te, feats)
    features = args.features.split(",") + [f"enc:{n}" for n in encoders]
    # NAME_z: NAME z-scored with the training candidates' statistics
    for base in ("last", "last_digit", "mean", "h_pos", "lp_pos", "p_pos", "emb_mean", "hidden+emb", "max",
                 "hidden+max", "sum", "emb_sum", "hidden+sum"):
        flat = feats["train"][base].reshape(-1, feats["train"][base].shape[-1])
        mu, sd = flat.mean(0), flat.std(0) + 1e-6
        for name in feats:
            feats[name][base + "_z"] = (feats[name][base] - mu) / sd

    # the recipe's features beside a bag of words (each block at unit scale per unit)
    for name in feats:
        for bow in ("emb_sum_z", "emb_sum_e"):
            feats[name]["hidden_probs+" + bow] = np.concatenate([feats[name]["hidden_probs"], feats[name][bow]], -1)
        for w in (0.5, 0.25):  # the bag of words at a lower weight
            feats[name][f"hidden_probs+{w}emb_sum_e"] = np.concatenate(
                [feats[name]["hidden_probs"], w * feats[name]["emb_sum_e"]], -1)

    from learner.configs import erm_config

    erm_cfg = erm_config(cfg)
    stats = {"train": tie_stats(tr["gold"], tr["ids"]), "test": tie_stats(te["gold"], te["ids"])}
    t_rows, t_pairs = all_pairs(te["ids"])
    results, table = [], []
    trainings = [("learner", 0)] + ([("long", args.long_steps)] if args.long_steps else [])
    # no-ERM baseline: the starting policy's own log-likelihood as the reward
    base = held_out_metrics(te["logprob"][None], te["gold"], t_rows, t_pairs, tau)
    table.append({"feature": "logprob (no ERM)", "n": 0, "train": "-",
                  **{k: base[k] for k in ("acc_gold", "acc_bt", "ece", "top1")},
                  "sd_wrong/right": "-", "auroc_sd": float("nan"), "signdis_wrong/right": "-",
                  "auroc_signdis": float("nan")})
    results.append({"feature": "policy_logprob", "n": 0, "training": "none", **base})
    for feat in features:
        for n in ns:
            for training, extra in trainings:
                per_seed = []
                for seed in range(args.seeds):
                    rng = np.random.default_rng(1000 + seed)
                    rows_p, pairs = random_pairs(tr["ids"], rng)
                    rows_p, pairs = rows_p[:n], pairs[:n]
                    if len(rows_p) < n:
                        raise ValueError(f"only {len(rows_p)} distinct-text training pairs for n={n}")
                    F = feats["train"][feat]
                    fa, fb = F[rows_p, pairs[:, 0]], F[rows_p, pairs[:, 1]]
                    ga, gb = tr["gold"][rows_p, pairs[:, 0]], tr["gold"][rows_p, pairs[:, 1]]
                    from duel.oracles.base import bt_prob, sample_labels

                    labels = sample_labels(bt_prob(ga, gb, tau), rng).astype(np.float32)
                    erm = train_erm(erm_cfg, fa, fb, labels, seed=seed, per_step=cfg.prompts_per_step,
                                    steps_per_update=cfg.erm.steps_per_update,
                                    buffer_size=cfg.erm.buffer_size, extra_steps=extra)
                    r = np.asarray(erm.rewards(feats["test"][feat]), np.float64)  # [K, P, M]
                    per_seed.append(held_out_metrics(r, te["gold"], t_rows, t_pairs, tau))
                m = {k: float(np.nanmean([s[k] for s in per_seed])) for k in per_seed[0]}
                sd_acc = float(np.std([s["acc_gold"] for s in per_seed]))
                adam = -(-n // cfg.prompts_per_step) * cfg.erm.steps_per_update + extra
                results.append({"feature": feat, "n": n, "training": training, "adam_steps": adam,
                                "seeds": args.seeds, "acc_gold_seed_sd": sd_acc, **m, "per_seed": per_seed})
                table.append({"feature": feat, "n": n, "train": f"{training} ({adam})",
                              "acc_gold": m["acc_gold"], "acc_bt": m["acc_bt"], "ece": m["ece"],
                              "top1": m["top1"],
                              "sd_wrong/right": f"{m['sd_wrong']:.3g}/{m['sd_right']:.3g}",
                              "auroc_sd": m["auroc_sd"],
                              "signdis_wrong/right": f"{m['signdis_wrong']:.3g}/{m['signdis_right']:.3g}",
                              "auroc_signdis": m["auroc_signdis"]})
                print(f"{feat:>12} n={n:<5} {training:<7} acc_gold={m['acc_gold']:.3f}±{sd_acc:.3f} "
                      f"top1={m['top1']:.3f} auroc_sd={m['auroc_sd']:.3f} auroc_signdis={m['auroc_signdis']:.3f}", flush=True)

    payload = {
        "config": args.config, "task": cfg.task, "model_dir": model_dir, "candidates": cfg.candidates,
        "erm_config": {"num_members": erm_cfg.num_members, "hidden": list(erm_cfg.hidden),
                       "lr": erm_cfg.lr, "anchor_lambda": erm_cfg.anchor_lambda,
                       "bootstrap": erm_cfg.bootstrap, "steps_per_update": cfg.erm.steps_per_update,
                       "batch": ERM_BATCH, "pairs_per_learner_step": cfg.prompts_per_step},
        "oracle_tau": tau, "train_prompts": n_train, "test_prompts": args.test_prompts,
        "test_pairs": int(len(t_rows)), "tie_stats": stats, "results": results, "encoders": encoders,
        "wall_s": time.perf_counter() - t0, "sample_s": t_sample,
        "note": "pairs are passive (random distinct) pairs from the STARTING policy; held-out pairs "
                "are every distinct-text pair of disjoint prompts; metrics averaged over seeds",
    }
    print("\ntie stats (test candidates):", {k: round(v, 3) for k, v in stats["test"].items()})
    path = write_result(args.out, payload, check=args.check)
    print_table(table, title=f"ERM held-out pair accuracy ({cfg.task}, M={cfg.candidates}, "
                             f"{len(t_rows)} test pairs) -> {path}")
    return payload


if __name__ == "__main__":
    main()

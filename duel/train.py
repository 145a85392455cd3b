"""The policy train step: preference pairs (or SFT examples) -> AdamW update of float32 masters.

    state = init_train_state(model, cfg)                  # split once; float32 masters + AdamW state
    batch = with_reference(batch, state, ref_params, cfg) # optional: the learner's own reference pass
    state, metrics = train_step(state, batch, cfg)        # jitted, state donated
    model = model_from_state(state, jnp.bfloat16)         # publish

One forward pass per micro-batch runs chosen and rejected (and an XPO reference sample, if given
as its own sequence) stacked along the batch axis. Micro-batch gradients are summed with the loss
normalised by the whole batch's weight, so accumulation equals one big batch. Compute may run in
bfloat16 from the float32 masters (`compute_dtype`); `remat` keeps only each layer's input in
the forward pass and recomputes the layer in the backward pass (bench/memory.py: the Pythia-1B
DPO step at 8 x 512 tokens, 1 micro-batch, needs 17 GB instead of 35 GB by XLA's H100 count).

NNX modules are split and merged here only (`split_model`, `merge_model`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx, struct

from duel.keys import KEY_DROPOUT, step_key
from duel.logprobs import masked_sum, response_logprobs
from duel.losses import KINDS, REFERENCE_FREE, preference_loss
from duel.reference import ema


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Loss, optimizer and execution settings of the train step (hashable: a jit static arg)."""

    loss: str = "dpo"  # one of duel.losses.KINDS (the run config's loss.kind)
    beta: float = 0.1
    average: bool = False  # length-averaged log-probs instead of sums
    label_smoothing: float = 0.0  # the labels' flip rate: dpo / xpo smoothing (cDPO), rdpo's known rate
    simpo_gamma: float = 0.0  # simpo target margin
    xpo_alpha: float = 0.0  # xpo exploration weight
    nll_weight: float = 0.0  # + nll_weight * per-token NLL of the chosen response (RPO)
    lr: float = 5e-7  # peak learning rate
    warmup_steps: int = 0
    total_steps: int = 1000
    min_lr_ratio: float = 0.0  # cosine decays to lr * min_lr_ratio
    weight_decay: float = 0.0
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    clip_norm: float | None = 1.0  # global-norm clipping; None or 0 turns it off
    micro_batches: int = 1
    compute_dtype: str = "float32"  # or "bfloat16" ("float64" for gradient checks under x64)
    remat: bool = False  # rematerialise each transformer layer in the backward pass
    vocab_chunk: int | None = None  # token positions per vocabulary-projection chunk (None = all)
    seed: int = 0  # LoRA dropout keys: (seed, optimizer step, KEY_DROPOUT, micro-batch)

    def __post_init__(self):
        if self.loss not in KINDS:
            raise ValueError(f"unknown preference loss kind {self.loss!r}; valid kinds: {', '.join(KINDS)}")
        if self.compute_dtype not in ("float32", "bfloat16", "float64"):
            raise ValueError(f"compute_dtype must be 'float32', 'bfloat16' or 'float64', got {self.compute_dtype!r}")
        if self.micro_batches < 1:
            raise ValueError(f"micro_batches must be >= 1, got {self.micro_batches}")


def learning_rate_schedule(cfg: TrainConfig) -> optax.Schedule:
    """Linear warmup from 0 to lr over warmup_steps, then cosine to the floor."""
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=cfg.lr,
        warmup_steps=cfg.warmup_steps,
        decay_steps=max(cfg.total_steps, cfg.warmup_steps + 1),
        end_value=cfg.lr * cfg.min_lr_ratio,
    )


def make_optimizer(cfg: TrainConfig) -> optax.GradientTransformation:
    """Global-norm clipping, then AdamW on the warmup + cosine schedule."""
    adamw = optax.adamw(learning_rate_schedule(cfg), b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if not cfg.clip_norm:
        return adamw
    return optax.chain(optax.clip_by_global_norm(cfg.clip_norm), adamw)


# ---------------------------------------------------------------- NNX split / merge (only here)


def split_model(model):
    """model -> (graphdef, params, rest): trainable nnx.Param state and everything else."""
    return nnx.split(model, nnx.Param, ...)


def merge_model(graphdef, params, rest):
    return nnx.merge(graphdef, params, rest)


def cast_floating(tree, dtype):
    """Cast the floating-point leaves of a pytree (nnx.State included) to dtype."""
    dtype = jnp.dtype(dtype)
    return jax.tree.map(lambda x: x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x, tree)


@struct.dataclass
class TrainState:
    """float32 master params (an nnx.State), Optax state, step; graphdef and non-param state."""

    step: jax.Array
    params: Any
    opt_state: Any
    rest: Any
    graphdef: Any = struct.field(pytree_node=False)


def init_train_state(model, cfg: TrainConfig) -> TrainState:
    """Fresh state from a model: float32 copies of its params (train_step donates the state, so
    the model's own buffers must not be shared with it)."""
    graphdef, params, rest = split_model(model)
    params = jax.tree.map(lambda x: jnp.array(x, dtype=jnp.promote_types(x.dtype, jnp.float32), copy=True), params)
    rest = jax.tree.map(lambda x: jnp.array(x, copy=True), rest)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=make_optimizer(cfg).init(params),
        rest=rest,
        graphdef=graphdef,
    )


@functools.partial(jax.jit, donate_argnames=("average",))
def polyak_update(average, params, count, decay):
    """The debiased exponential moving average of the parameters after their `count`-th update
    (count >= 1): the reference's `ema` step (1 - w) average + w params with the weight
    w = (1 - decay) / (1 - decay**count).

    The first update gives w = 1 (the average is the policy: the starting weights get no weight),
    and then it is the average of the updates so far, the k-th newest weighing decay**k times
    the newest (Adam's bias correction, applied to the weights). float32, leaf by leaf."""
    decay = jnp.asarray(decay, jnp.float32)
    return ema(average, params, (1.0 - decay) / (1.0 - jnp.power(decay, jnp.asarray(count, jnp.float32))))


def model_from_state(state: TrainState, dtype=None):
    """A live NNX module with the current params (cast to dtype if given), e.g. to publish."""
    params = state.params if dtype is None else cast_floating(state.params, dtype)
    return merge_model(state.graphdef, params, state.rest)


# ---------------------------------------------------------------- batches


@struct.dataclass
class PairTensors:
    """B preference pairs. Prompts left-padded [B, Tp]; responses right-padded [B, N].

    ref_chosen/ref_rejected: reference log-prob sums [B] (zeros for simpo). prob: P(chosen >
    rejected) [B] (1 for hard labels). weight [B]: 0 masks a pair. XPO: the reference sample is
    either its own sequence (ref_sample_ids/mask [B, N]) or one of the pair
    (ref_sample_is_chosen [B]: 1 = chosen, 0 = rejected).
    """

    prompt_ids: jax.Array
    prompt_mask: jax.Array
    chosen_ids: jax.Array
    chosen_mask: jax.Array
    rejected_ids: jax.Array
    rejected_mask: jax.Array
    ref_chosen: jax.Array
    ref_rejected: jax.Array
    prob: jax.Array
    weight: jax.Array
    ref_sample_ids: jax.Array | None = None
    ref_sample_mask: jax.Array | None = None
    ref_sample_is_chosen: jax.Array | None = None

    @property
    def size(self) -> int:
        return self.prompt_ids.shape[0]


@struct.dataclass
class SFTTensors:
    """B (prompt, response) examples for cross-entropy on the response tokens."""

    prompt_ids: jax.Array
    prompt_mask: jax.Array
    response_ids: jax.Array
    response_mask: jax.Array

    @property
    def size(self) -> int:
        return self.prompt_ids.shape[0]


def pairs_from_labeled(labeled, *, soft: bool = True) -> PairTensors:
    """LabeledBatch (NumPy, host) -> PairTensors: the sampled label decides chosen/rejected.

    soft=True keeps prob = P(chosen > rejected) from the oracle; soft=False uses the hard label
    (prob = 1). Identical pairs get weight 0. Reference sums come from the candidates' frozen pass.
    When some candidates were sampled from the reference (`CandidateBatch.from_reference`, strategy
    xpo), `ref_sample_is_chosen` says which response of each pair is the reference sample.
    """
    pb = labeled.pairs
    cand = pb.candidates
    rows = np.arange(len(pb.pairs))
    a_wins = np.asarray(labeled.label).astype(bool)
    win = np.where(a_wins, pb.pairs[:, 0], pb.pairs[:, 1])
    lose = np.where(a_wins, pb.pairs[:, 1], pb.pairs[:, 0])
    prob_a = np.asarray(labeled.prob_a, np.float32)
    ref_sums = (cand.ref_logprobs * (cand.mask > 0)).sum(-1).astype(np.float32)  # [P, M]
    return PairTensors(
        prompt_ids=np.asarray(cand.prompts.input_ids, np.int32),
        prompt_mask=np.asarray(cand.prompts.attention_mask, np.int32),
        chosen_ids=cand.tokens[rows, win].astype(np.int32),
        chosen_mask=cand.mask[rows, win].astype(np.int32),
        rejected_ids=cand.tokens[rows, lose].astype(np.int32),
        rejected_mask=cand.mask[rows, lose].astype(np.int32),
        ref_chosen=ref_sums[rows, win],
        ref_rejected=ref_sums[rows, lose],
        prob=np.where(a_wins, prob_a, 1.0 - prob_a).astype(np.float32) if soft else np.ones(len(rows), np.float32),
        weight=(~np.asarray(pb.identical, bool)).astype(np.float32),
        ref_sample_is_chosen=(cand.from_reference[rows, win].astype(np.int32)
                              if cand.from_reference.any() else None),
    )


# ---------------------------------------------------------------- losses on a micro-batch


def _forward(params, graphdef, rest, prompt_ids, prompt_mask, response_ids, response_mask, cfg, key=None):
    """Per-token log-probs [B, N] with the params cast to the compute dtype (`key`: LoRA dropout)."""
    from duel.models.lora import set_dropout_key

    model = merge_model(graphdef, cast_floating(params, cfg.compute_dtype), rest)
    set_dropout_key(model, key)
    if cfg.remat:
        model.remat = True  # per-layer jax.checkpoint inside the layer scan (duel.models.transformer)
    return response_logprobs(model, prompt_ids, prompt_mask, response_ids, response_mask, vocab_chunk=cfg.vocab_chunk)


def pair_loss(params, graphdef, rest, batch: PairTensors, cfg: TrainConfig, normalizer, key=None):
    """Preference loss of a (micro-)batch, summed over pairs and divided by `normalizer`."""
    b = batch.size
    responses = [batch.chosen_ids, batch.rejected_ids]
    masks = [batch.chosen_mask, batch.rejected_mask]
    separate_sample = cfg.loss == "xpo" and batch.ref_sample_ids is not None
    if separate_sample:
        responses.append(batch.ref_sample_ids)
        masks.append(batch.ref_sample_mask)
    k = len(responses)
    mask = jnp.concatenate(masks)
    lp = _forward(
        params,
        graphdef,
        rest,
        jnp.concatenate([batch.prompt_ids] * k),
        jnp.concatenate([batch.prompt_mask] * k),
        jnp.concatenate(responses),
        mask,
        cfg,
        key,
    )
    sums = masked_sum(lp, mask)
    counts = jnp.sum(mask > 0, axis=-1)
    pi_chosen, pi_rejected = sums[:b], sums[b : 2 * b]
    pi_ref_sample = None
    if cfg.loss == "xpo":
        if separate_sample:
            pi_ref_sample = sums[2 * b :]
        elif batch.ref_sample_is_chosen is not None:
            pi_ref_sample = jnp.where(batch.ref_sample_is_chosen > 0, pi_chosen, pi_rejected)
        else:
            raise ValueError("loss 'xpo' needs ref_sample_ids/ref_sample_mask or ref_sample_is_chosen in the batch")
    no_ref = cfg.loss in REFERENCE_FREE
    return preference_loss(
        cfg.loss,
        pi_chosen,
        pi_rejected,
        None if no_ref else batch.ref_chosen,
        None if no_ref else batch.ref_rejected,
        cfg.beta,
        prob=batch.prob,
        weight=batch.weight,
        normalizer=normalizer,
        average=cfg.average,
        chosen_len=counts[:b],
        rejected_len=counts[b : 2 * b],
        label_smoothing=cfg.label_smoothing,
        flip_rate=cfg.label_smoothing,
        gamma=cfg.simpo_gamma,
        alpha=cfg.xpo_alpha,
        pi_ref_sample=pi_ref_sample,
        nll_weight=cfg.nll_weight,
    )


def sft_loss(params, graphdef, rest, batch: SFTTensors, cfg: TrainConfig, normalizer, key=None):
    """Cross-entropy on the response tokens, summed and divided by `normalizer` (token count)."""
    lp = _forward(params, graphdef, rest, batch.prompt_ids, batch.prompt_mask, batch.response_ids, batch.response_mask,
                  cfg, key)
    nll = -jnp.sum(masked_sum(lp, batch.response_mask)) / normalizer
    return nll, {"loss": nll, "tokens": jnp.sum(batch.response_mask > 0).astype(jnp.float32)}


# ---------------------------------------------------------------- the update


def split_micro_batches(x, m: int):
    """[B, ...] -> [m, B/m, ...] with micro-batch i = rows i, i+m, i+2m, ... (strided, not blocks).

    Under a batch sharded over its leading axis (duel.sharding dp/fsdp) every device's rows stay
    on that device: reshape to [B/m, m, ...] keeps the sharded axis outermost, and the swap only
    relabels axes. Contiguous blocks ([m, B/m]) would put micro-batch 0 on the first devices and
    force XLA to reshard (replicate) the batch. Rows stay local when m divides each device's rows
    (B / devices); otherwise a micro-batch cannot cover every device and XLA moves rows. Any split
    sums to the same gradient up to float rounding (tests/duel/test_train.py).
    """
    return jnp.swapaxes(x.reshape(x.shape[0] // m, m, *x.shape[1:]), 0, 1)


def _update(loss_fn, state: TrainState, batch, cfg: TrainConfig, normalizer):
    """Sum gradients and metrics over cfg.micro_batches slices of batch, then one AdamW step."""
    m = cfg.micro_batches
    if batch.size % m:
        raise ValueError(f"batch of {batch.size} does not split into {m} micro-batches")
    micro = jax.tree.map(functools.partial(split_micro_batches, m=m), batch)
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

    def one(mb, i):
        key = step_key(cfg.seed, state.step, KEY_DROPOUT, i)  # used by LoRA dropout only
        (_, metrics), grads = grad_fn(state.params, state.graphdef, state.rest, mb, cfg, normalizer, key)
        return grads, metrics

    if m == 1:
        grads, metrics = one(jax.tree.map(lambda x: x[0], micro), 0)
    else:
        shapes = jax.eval_shape(one, jax.tree.map(lambda x: x[0], micro), 0)
        zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

        def body(acc, xs):
            mb, i = xs
            return jax.tree.map(jnp.add, acc, one(mb, i)), None

        (grads, metrics), _ = jax.lax.scan(body, zeros, (micro, jnp.arange(m, dtype=jnp.int32)))

    tx = make_optimizer(cfg)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = dict(metrics, grad_norm=optax.global_norm(grads), learning_rate=learning_rate_schedule(cfg)(state.step))
    return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


@functools.partial(jax.jit, static_argnames=("cfg",), donate_argnames=("state",))
def train_step(state: TrainState, batch: PairTensors, cfg: TrainConfig):
    """One preference-learning update on B pairs -> (new state, metrics)."""
    return _update(pair_loss, state, batch, cfg, jnp.maximum(jnp.sum(batch.weight), 1e-8))


@functools.partial(jax.jit, static_argnames=("cfg",), donate_argnames=("state",))
def sft_step(state: TrainState, batch: SFTTensors, cfg: TrainConfig):
    """One supervised update: mean negative log-likelihood of the response tokens."""
    return _update(sft_loss, state, batch, cfg, jnp.maximum(jnp.sum(batch.response_mask > 0), 1).astype(jnp.float32))


# ---------------------------------------------------------------- reference log-probs


@functools.partial(jax.jit, static_argnames=("graphdef", "compute_dtype", "vocab_chunk"))
def sequence_logprob_sums(
    graphdef, params, rest, prompt_ids, prompt_mask, response_ids, response_mask, *, compute_dtype="float32", vocab_chunk=None
):
    """log pi(y | x) summed over response tokens, [B] float32, for any params of this graphdef."""
    model = merge_model(graphdef, cast_floating(params, compute_dtype), rest)
    lp = response_logprobs(model, prompt_ids, prompt_mask, response_ids, response_mask, vocab_chunk=vocab_chunk)
    return masked_sum(lp, response_mask)


def with_reference(batch: PairTensors, state: TrainState, ref_params, cfg: TrainConfig) -> PairTensors:
    """The batch with ref_chosen/ref_rejected computed by the learner (chosen + rejected in one pass)."""
    b = batch.size
    sums = sequence_logprob_sums(
        state.graphdef,
        ref_params,
        state.rest,
        jnp.concatenate([batch.prompt_ids] * 2),
        jnp.concatenate([batch.prompt_mask] * 2),
        jnp.concatenate([batch.chosen_ids, batch.rejected_ids]),
        jnp.concatenate([batch.chosen_mask, batch.rejected_mask]),
        compute_dtype=cfg.compute_dtype,
        vocab_chunk=cfg.vocab_chunk,
    )
    return batch.replace(ref_chosen=sums[:b], ref_rejected=sums[b:])


# ---------------------------------------------------------------- SFT convenience


def _example_tokens(ex, tokenizer, add_eos: bool):
    if isinstance(ex, dict) and "prompt_ids" in ex:
        return list(ex["prompt_ids"]), list(ex["response_ids"])
    if isinstance(ex, dict):
        if tokenizer is None:
            raise ValueError("examples given as text ({'prompt', 'response'}) need a tokenizer")
        p = tokenizer(ex["prompt"])["input_ids"]
        r = tokenizer(ex["response"], add_special_tokens=False)["input_ids"]
        if add_eos and tokenizer.eos_token_id is not None:
            r = r + [tokenizer.eos_token_id]
        return list(p), list(r)
    p, r = ex
    return list(p), list(r)


def sft_tensors(examples, *, pad_id: int = 0, tokenizer=None, add_eos: bool = True, prompt_len=None, response_len=None):
    """Token-id examples -> SFTTensors (NumPy), prompts left-padded, responses right-padded.

    An example is (prompt_ids, response_ids), {"prompt_ids", "response_ids"}, or {"prompt",
    "response"} text with a tokenizer (EOS appended to the response when add_eos).
    """
    toks = [_example_tokens(ex, tokenizer, add_eos) for ex in examples]
    if not toks:
        raise ValueError("sft needs at least one example")
    for i, (p, r) in enumerate(toks):
        if not p or not r:
            raise ValueError(f"example {i} has an empty prompt or response")
    tp = prompt_len or max(len(p) for p, _ in toks)
    tn = response_len or max(len(r) for _, r in toks)
    B = len(toks)
    pids = np.full((B, tp), pad_id, np.int32)
    pmask = np.zeros((B, tp), np.int32)
    rids = np.full((B, tn), pad_id, np.int32)
    rmask = np.zeros((B, tn), np.int32)
    for i, (p, r) in enumerate(toks):
        p, r = p[-tp:], r[:tn]  # keep the end of a long prompt, the start of a long response
        pids[i, tp - len(p) :], pmask[i, tp - len(p) :] = p, 1
        rids[i, : len(r)], rmask[i, : len(r)] = r, 1
    return SFTTensors(prompt_ids=pids, prompt_mask=pmask, response_ids=rids, response_mask=rmask)


def sft_train(
    model,
    examples,
    steps: int,
    *,
    batch_size: int = 8,
    learning_rate: float = 1e-4,
    warmup_steps: int = 0,
    seed: int = 0,
    pad_id: int = 0,
    tokenizer=None,
    cfg: TrainConfig | None = None,
    on_step=None,
):
    """Supervised fine-tuning of `model` in place on (prompt, response) examples.

    Shuffled mini-batches of batch_size (sampled without replacement, epoch by epoch); all
    batches are padded to the longest example so one compilation serves every step. Returns
    (model, losses) with the per-step mean token NLL. Parameters keep their original dtype.
    `on_step(steps_done, loss)` is called after each step (a progress display).
    """
    data = sft_tensors(examples, pad_id=pad_id, tokenizer=tokenizer)
    cfg = cfg or TrainConfig(lr=learning_rate, warmup_steps=warmup_steps, total_steps=max(steps, 1), clip_norm=1.0)
    dtype = jax.tree.leaves(nnx.state(model, nnx.Param))[0].dtype
    state = init_train_state(model, cfg)
    rng = np.random.default_rng(seed)
    n = data.size
    bs = min(batch_size, n)
    order, pos, losses = rng.permutation(n), 0, []
    for _ in range(steps):
        if pos + bs > n:
            order, pos = rng.permutation(n), 0
        idx = order[pos : pos + bs]
        pos += bs
        state, metrics = sft_step(state, jax.tree.map(lambda x, idx=idx: x[idx], data), cfg)
        losses.append(float(metrics["loss"]))
        if on_step is not None:
            on_step(len(losses), losses[-1])
    nnx.update(model, cast_floating(state.params, dtype))
    return model, losses

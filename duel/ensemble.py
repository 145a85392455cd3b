"""The epistemic reward model (ERM): an anchored ensemble of K small MLPs over frozen features.

SEA (Liu et al. 2024, "Sample-Efficient Alignment for LLMs") models the reward of a response as
r_k(x, y) = f_{theta_k}(phi(x, y)) for K ensemble members k. Each member is trained with the
Bradley-Terry log-loss on the labelled pairs and an anchored regulariser that pulls it toward its
own random initialisation theta_k^0 (Pearce et al. 2020), weighted lambda * B / N for a batch of
B pairs out of N queries so far:

    L_k = (1/B) [ sum_i m_ik * BCE(p_i, sigma(r_k(a_i) - r_k(b_i))) + lambda * B/N * ||theta_k - theta_k^0||^2 ]

(p_i = P(a_i > b_i), soft labels allowed; m_ik optional bootstrap masks). The spread of the
members is the epistemic uncertainty that Thompson sampling in `duel.explore` draws from.

Parameters are stacked on a leading member axis and evaluated with `vmap`. The whole state is
the `ERM` pytree (a flax.struct.dataclass: arrays + static config): Orbax checkpoints it, `ray.put` ships it. `update`
runs all its Adam steps in one jitted scan with the first layer of every member as one matmul
(`_wide` layout); `update(..., reference=True)` is the plain vmapped form it is tested against.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

Params = list[dict[str, jax.Array]]  # per layer {"w": [K, in, out], "b": [K, out]}


BOOTSTRAP_P = 0.5  # with `ERMConfig.bootstrap`: the probability that a member sees a pair


@dataclasses.dataclass(frozen=True)
class ERMConfig:
    num_members: int = 20  # K
    hidden: tuple[int, ...] = (128, 128)
    lr: float = 1e-3  # Adam's learning rate
    anchor_lambda: float = 1.0  # lambda of the anchored regulariser
    bootstrap: bool = False  # per-member masks: each member sees each pair with probability BOOTSTRAP_P
    steps_per_update: int = 5  # Adam steps per `update` when given one batch
    init_scale: float = 1.0  # multiplies the He-normal init (the prior spread)

    def __post_init__(self):
        if self.num_members < 1:
            raise ValueError(f"ERMConfig.num_members must be >= 1, got {self.num_members}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if not isinstance(self.bootstrap, bool):
            raise TypeError(f"ERMConfig.bootstrap must be true/false, got {self.bootstrap!r}")
        if self.steps_per_update < 1:
            raise ValueError(f"ERMConfig.steps_per_update must be >= 1, got {self.steps_per_update}")


def init_params(key: jax.Array, feature_dim: int, config: ERMConfig) -> Params:
    """He-normal weights, zero biases, independently per member: [K, in, out] / [K, out]."""
    sizes = (feature_dim, *config.hidden, 1)
    keys = jax.random.split(key, len(sizes) - 1)
    params = []
    for k, (n_in, n_out) in zip(keys, zip(sizes[:-1], sizes[1:])):
        std = config.init_scale * np.sqrt(2.0 / n_in)
        w = std * jax.random.normal(k, (config.num_members, n_in, n_out), jnp.float32)
        params.append({"w": w, "b": jnp.zeros((config.num_members, n_out), jnp.float32)})
    return params


def _member_reward(layers: Params, x: jax.Array) -> jax.Array:
    """One member's MLP: x [..., F] -> [...]."""
    h = x
    for layer in layers[:-1]:
        h = jax.nn.relu(h @ layer["w"] + layer["b"])
    return (h @ layers[-1]["w"] + layers[-1]["b"])[..., 0]


@jax.jit
def rewards(params: Params, features: jax.Array) -> jax.Array:
    """r_k(phi) for every member: features [..., F] -> [K, ...]."""
    return jax.vmap(_member_reward, in_axes=(0, None))(params, jnp.asarray(features, jnp.float32))


def reward_mean(r: jax.Array) -> jax.Array:
    """Ensemble mean over the member axis: [K, ...] -> [...]."""
    return jnp.mean(r, axis=0)


def epistemic_variance(r: jax.Array) -> jax.Array:
    """Variance over the member axis: [K, ...] -> [...]."""
    return jnp.var(r, axis=0)


def bt_log_loss(delta: jax.Array, prob_a: jax.Array) -> jax.Array:
    """Bradley-Terry log-loss with soft labels: -p log sigma(delta) - (1 - p) log sigma(-delta)."""
    return -(prob_a * jax.nn.log_sigmoid(delta) + (1.0 - prob_a) * jax.nn.log_sigmoid(-delta))


def anchor_sq_dist(params: Params, anchor: Params) -> jax.Array:
    """||theta_k - theta_k^0||^2 per member: [K]."""
    sq = jax.tree.map(lambda p, a: jnp.sum((p - a) ** 2, axis=tuple(range(1, p.ndim))), params, anchor)
    return sum(jax.tree.leaves(sq))


def erm_loss(params, anchor, fa, fb, prob_a, masks, num_queries, anchor_lambda):
    """Sum over members of L_k (see module docstring); returns (loss, aux metrics)."""
    batch = fa.shape[0]
    r = rewards(params, jnp.concatenate([fa, fb]))  # one pass over both responses: [K, 2B]
    delta = r[:, :batch] - r[:, batch:]  # [K, B]
    nll = bt_log_loss(delta, prob_a[None, :])  # [K, B]
    reg = anchor_sq_dist(params, anchor)  # [K]
    weight = anchor_lambda * batch / jnp.maximum(num_queries, 1.0)
    per_member = (jnp.sum(masks * nll, axis=1) + weight * reg) / batch  # [K]
    mean_delta = jnp.mean(delta, axis=0)
    aux = {
        "erm_nll": jnp.mean(nll),
        "erm_anchor": jnp.mean(reg),
        "erm_accuracy": jnp.mean((mean_delta > 0) == (prob_a > 0.5)),
    }
    return jnp.sum(per_member), aux


def _optimizer(config: ERMConfig) -> optax.GradientTransformation:
    return optax.adam(config.lr)


@struct.dataclass(eq=False)  # eq=False: compared by identity, as arrays have no one truth value
class ERM:
    """The ERM state: member params, their anchors (the random init), Adam state, step count.

    A pytree of arrays with static (feature_dim, config): jit, Orbax and `ray.put` take it whole.
    Its leaves' key paths are .params, .anchor, .opt_state, .step (checkpoints name them so).
    Build one with `ERM.create(feature_dim, config, key)`.
    """

    feature_dim: int = struct.field(pytree_node=False)
    config: ERMConfig = struct.field(pytree_node=False)
    params: Params
    anchor: Params
    opt_state: Any
    step: jax.Array

    @classmethod
    def create(cls, feature_dim: int, config: ERMConfig | None = None, key: jax.Array | None = None) -> "ERM":
        if int(feature_dim) < 1:
            raise ValueError(f"ERM feature_dim must be >= 1, got {feature_dim}")
        config = config or ERMConfig()
        key = jax.random.key(0) if key is None else key
        params = init_params(key, int(feature_dim), config)
        return cls(feature_dim=int(feature_dim), config=config, params=params,
                   anchor=jax.tree.map(jnp.copy, params), opt_state=_optimizer(config).init(params),
                   step=jnp.zeros((), jnp.int32))

    @property
    def num_members(self) -> int:
        return self.config.num_members

    def rewards(self, features) -> jax.Array:
        """[..., F] -> [K, ...]."""
        _check_features(features, self.feature_dim, "features")
        return rewards(self.params, features)

    def __repr__(self) -> str:
        return f"ERM(feature_dim={self.feature_dim}, config={self.config}, step={int(self.step)})"


def _check_features(x, feature_dim: int, name: str) -> None:
    shape = np.shape(x)
    if len(shape) < 1 or shape[-1] != feature_dim:
        raise ValueError(f"{name} must be shaped [..., {feature_dim}] (feature_dim), got {shape}")


def _wide(tree):
    """Layer 0's weights [K, F, H] <-> [F, K, H] (the transpose is its own inverse); other leaves as is.

    In the [F, K, H] layout the first layer of all K members is one [2B, F] x [F, K*H] matmul
    (the members share their input), and its weight gradient one [F, 2B] x [2B, K*H] matmul:
    XLA on CPU runs these faster than the member-batched form of `rewards`."""
    return [dict(tree[0], w=jnp.swapaxes(tree[0]["w"], 0, 1)), *tree[1:]]


def _is_params(x) -> bool:
    return isinstance(x, list) and bool(x) and isinstance(x[0], dict) and "w" in x[0]


def _wide_state(opt_state):
    """`_wide` on every params-shaped subtree of an optax state (Adam's mu and nu)."""
    return jax.tree.map(lambda x: _wide(x) if _is_params(x) else x, opt_state, is_leaf=_is_params)


def _rewards_wide(params, x: jax.Array) -> jax.Array:
    """`rewards` for params in the `_wide` layout: x [N, F] -> [K, N]."""
    w0 = params[0]["w"]  # [F, K, H]
    f, k, h = w0.shape
    z = (x @ w0.reshape(f, k * h)).reshape(x.shape[0], k, h) + params[0]["b"]
    z = jnp.swapaxes(z, 0, 1)  # [K, N, H]
    for layer in params[1:]:
        z = jax.nn.relu(z) @ layer["w"] + layer["b"][:, None, :]
    return z[..., 0]


def _erm_loss_wide(params, anchor, fa, fb, prob_a, masks, num_queries, anchor_lambda):
    """`erm_loss` for params in the `_wide` layout (same value and aux, up to float32 rounding)."""
    batch = fa.shape[0]
    r = _rewards_wide(params, jnp.concatenate([fa, fb]))  # [K, 2B]
    delta = r[:, :batch] - r[:, batch:]
    nll = bt_log_loss(delta, prob_a[None, :])
    reg = sum(jnp.sum((p - a) ** 2) for p, a in zip(jax.tree.leaves(params), jax.tree.leaves(anchor)))
    weight = anchor_lambda * batch / jnp.maximum(num_queries, 1.0)
    loss = (jnp.sum(masks * nll) + weight * reg) / batch  # = sum over members of L_k
    aux = {
        "erm_nll": jnp.mean(nll),
        "erm_anchor": reg / r.shape[0],  # mean over members of ||theta_k - theta_k^0||^2
        "erm_accuracy": jnp.mean((jnp.mean(delta, axis=0) > 0) == (prob_a > 0.5)),
    }
    return loss, aux


def _masks(config: ERMConfig, key, i, batch: int) -> jax.Array:
    mk = jax.random.fold_in(key, i)
    p = BOOTSTRAP_P if config.bootstrap else 1.0  # p = 1: every mask is 1 (the key is drawn all the same)
    return jax.random.bernoulli(mk, p, (config.num_members, batch)).astype(jnp.float32)


@functools.partial(jax.jit, static_argnames=("steps",))
def _adam_steps(state: ERM, fa, fb, prob_a, num_queries, key, steps: int):
    """`steps` Adam steps in one program; fa/fb [S, B, F], prob_a [S, B] (S = 1 reuses one batch).

    Runs in the `_wide` layout (params, anchor and Adam moments transposed once on the way in
    and out; Adam is elementwise, so the layout changes nothing but the matmuls' speed).
    `_adam_steps_reference` is the plain form; tests compare the two."""
    config = state.config
    opt = _optimizer(config)
    grad_fn = jax.grad(_erm_loss_wide, has_aux=True)
    anchor = _wide(state.anchor)

    def one(carry, i):
        params, opt_state = carry
        j = jnp.minimum(i, fa.shape[0] - 1)
        grads, aux = grad_fn(params, anchor, fa[j], fb[j], prob_a[j], _masks(config, key, i, fa.shape[1]),
                             num_queries, config.anchor_lambda)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), aux

    carry = (_wide(state.params), _wide_state(state.opt_state))
    (params, opt_state), aux = jax.lax.scan(one, carry, jnp.arange(steps))
    metrics = jax.tree.map(lambda v: v[-1], aux)
    new = state.replace(params=_wide(params), opt_state=_wide_state(opt_state), step=state.step + steps)
    return new, metrics


@functools.partial(jax.jit, static_argnames=("steps",))
def _adam_steps_reference(state: ERM, fa, fb, prob_a, num_queries, key, steps: int):
    """The plain form of `_adam_steps`: members vmapped (`rewards`), grad of `erm_loss`, optax Adam."""
    config = state.config
    opt = _optimizer(config)
    grad_fn = jax.grad(erm_loss, has_aux=True)

    def one(carry, i):
        params, opt_state = carry
        j = jnp.minimum(i, fa.shape[0] - 1)
        grads, aux = grad_fn(params, state.anchor, fa[j], fb[j], prob_a[j], _masks(config, key, i, fa.shape[1]),
                             num_queries, config.anchor_lambda)
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), aux

    (params, opt_state), aux = jax.lax.scan(one, (state.params, state.opt_state), jnp.arange(steps))
    metrics = jax.tree.map(lambda v: v[-1], aux)
    return state.replace(params=params, opt_state=opt_state, step=state.step + steps), metrics


def update(state: ERM, fa, fb, prob_a, num_queries, key, steps: int | None = None, *, reference: bool = False):
    """Adam steps on labelled pairs -> (new state, metrics of the last step).

    fa, fb: [B, F] features of the two responses (one batch, reused `steps` times, default
    config.steps_per_update) or [S, B, F] (one batch per step, S steps). prob_a: [B] or [S, B],
    P(a > b) in [0, 1]. num_queries: N, the number of labelled pairs seen so far (anchor weight).
    key: drives the bootstrap masks. reference: run the plain implementation (tests).
    """
    fa = jnp.asarray(fa, jnp.float32)
    fb = jnp.asarray(fb, jnp.float32)
    prob_a = jnp.asarray(prob_a, jnp.float32)
    _check_features(fa, state.feature_dim, "fa")
    if fa.shape != fb.shape or fa.ndim not in (2, 3) or prob_a.shape != fa.shape[:-1]:
        raise ValueError(
            "update expects fa, fb shaped [B, F] or [S, B, F] and prob_a shaped [B] or [S, B]; "
            f"got fa {fa.shape}, fb {fb.shape}, prob_a {prob_a.shape}"
        )
    if fa.ndim == 2:
        fa, fb, prob_a = fa[None], fb[None], prob_a[None]
        steps = state.config.steps_per_update if steps is None else steps
    else:
        steps = fa.shape[0] if steps is None else steps
    run = _adam_steps_reference if reference else _adam_steps
    return run(state, fa, fb, prob_a, jnp.asarray(num_queries, jnp.float32), key, steps=int(steps))


@functools.partial(jax.jit, static_argnames=("method",))
def best_of_n(r: jax.Array, method: str = "mean", c: float = 1.0) -> jax.Array:
    """Best candidate per prompt under the ensemble: r [K, P, M] -> [P] int32.

    method: "mean" (ensemble mean), "worst" (worst-case member, WCO) or "uwo"
    (uncertainty-weighted: mean - c * std), as in Coste et al. 2024.
    """
    if method == "mean":
        score = reward_mean(r)
    elif method == "worst":
        score = jnp.min(r, axis=0)
    elif method == "uwo":
        score = reward_mean(r) - c * jnp.std(r, axis=0)
    else:
        raise ValueError(f"unknown best_of_n method {method!r}; valid: mean, worst, uwo")
    return jnp.argmax(score, axis=-1).astype(jnp.int32)


class ReplayBuffer:
    """Fixed-capacity ring buffer of labelled feature pairs (NumPy, host side).

    `state_dict()` exports the full contents as arrays and `from_state_dict` restores them, so a
    resumed run samples exactly what an uninterrupted one would. Sampling is driven by a JAX key.
    """

    def __init__(self, capacity: int, feature_dim: int):
        if capacity < 1 or feature_dim < 1:
            raise ValueError(f"ReplayBuffer needs capacity >= 1 and feature_dim >= 1, got {capacity}, {feature_dim}")
        self.fa = np.zeros((capacity, feature_dim), np.float32)
        self.fb = np.zeros((capacity, feature_dim), np.float32)
        self.prob_a = np.zeros((capacity,), np.float32)
        self.size = 0  # filled rows
        self.head = 0  # next row to write
        self.total = 0  # pairs ever added (the N of the anchor weight)

    @property
    def capacity(self) -> int:
        return self.fa.shape[0]

    def __len__(self) -> int:
        return self.size

    def add(self, fa, fb, prob_a) -> None:
        fa, fb = np.asarray(fa, np.float32), np.asarray(fb, np.float32)
        prob_a = np.asarray(prob_a, np.float32)
        F = self.fa.shape[1]
        if fa.ndim != 2 or fa.shape[1] != F or fb.shape != fa.shape or prob_a.shape != fa.shape[:1]:
            raise ValueError(
                f"ReplayBuffer.add expects fa, fb [B, {F}] and prob_a [B]; "
                f"got {fa.shape}, {fb.shape}, {prob_a.shape}"
            )
        if np.any((prob_a < 0) | (prob_a > 1)) or not np.all(np.isfinite(prob_a)):
            raise ValueError("ReplayBuffer.add: prob_a must lie in [0, 1]")
        n = fa.shape[0]
        self.total += n
        if n > self.capacity:  # only the newest `capacity` rows survive
            fa, fb, prob_a = fa[-self.capacity :], fb[-self.capacity :], prob_a[-self.capacity :]
            self.head = (self.head + n - self.capacity) % self.capacity
            n = self.capacity
        idx = (self.head + np.arange(n)) % self.capacity
        self.fa[idx], self.fb[idx], self.prob_a[idx] = fa, fb, prob_a
        self.head = int((self.head + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def sample(self, key: jax.Array, batch_size: int, num_batches: int | None = None):
        """Uniform with replacement -> (fa, fb, prob_a) shaped [B, F] (or [S, B, F] with num_batches)."""
        if self.size == 0:
            raise ValueError("ReplayBuffer.sample: the buffer is empty")
        shape = (batch_size,) if num_batches is None else (num_batches, batch_size)
        idx = np.asarray(jax.random.randint(key, shape, 0, self.size))
        return self.fa[idx], self.fb[idx], self.prob_a[idx]

    def state_dict(self) -> dict[str, np.ndarray]:
        return {
            "fa": self.fa.copy(), "fb": self.fb.copy(), "prob_a": self.prob_a.copy(),
            "size": np.asarray(self.size, np.int64), "head": np.asarray(self.head, np.int64),
            "total": np.asarray(self.total, np.int64),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> "ReplayBuffer":
        missing = {"fa", "fb", "prob_a", "size", "head", "total"} - set(state)
        if missing:
            raise ValueError(f"ReplayBuffer.from_state_dict: missing keys {sorted(missing)}")
        fa = np.asarray(state["fa"], np.float32)
        buf = cls(fa.shape[0], fa.shape[1])
        buf.fa[...] = fa
        buf.fb[...] = np.asarray(state["fb"], np.float32)
        buf.prob_a[...] = np.asarray(state["prob_a"], np.float32)
        buf.size, buf.head, buf.total = int(state["size"]), int(state["head"]), int(state["total"])
        return buf

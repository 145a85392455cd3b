"""Contextual dueling-bandit lab: exploration strategies compared on a known utility.

Each round brings P contexts with M arms (feature vectors x ~ N(0, I)). A latent utility
u(x) (linear, or a small random MLP) decides duels by Bradley-Terry: P(a > b) = sigma(u_a - u_b).
The agent scores the arms with the ERM (`duel.ensemble`), picks a pair with
`duel.explore.select_pairs`, gets a sampled binary label, stores it and takes a few Adam steps.
Measured per strategy over T rounds and several seeds:

- cumulative regret of the dueled pair (explore & exploit): sum_t mean_p [u* - (u_a + u_b) / 2]
- simple regret of the ensemble's best arm (best-arm identification): u* - u(argmax mean r),
  per round on that round's contexts and at the end on held-out contexts.

One seed's T rounds are one `lax.scan`; seeds are `vmap`ped; one compile per strategy.
`run_lab(...)` is the Python API; the command line `duel bandit ...` is launch/bandit.py.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from duel.ensemble import ERM, ERMConfig, reward_mean, rewards, update
from duel.explore import select_pairs

LAB_STRATEGIES = ("passive", "ee_ts", "bai_ts", "uncertainty", "bon_won")
UTILITIES = ("linear", "mlp")


@dataclasses.dataclass(frozen=True)
class LabConfig:
    rounds: int = 200  # T
    num_arms: int = 10  # M
    prompts_per_round: int = 4  # P
    feature_dim: int = 8
    utility: str = "linear"  # "linear" | "mlp"
    utility_scale: float = 3.0  # std of u over arms: how decisive the BT duels are
    steps_per_round: int = 2  # Adam steps after each round
    batch_size: int = 32
    eval_contexts: int = 256
    arms: str = "gaussian"  # arm features: "gaussian" x ~ N(0, I) or "sphere" x / |x| * sqrt(d)
    relevant_dims: int = 0  # the utility reads only the first n features (0 = all), as an LLM
    #                         reward reads a small subspace of the encoder's features
    erm: ERMConfig = ERMConfig(num_members=10, hidden=(64, 64), lr=3e-3, anchor_lambda=30.0)

    def __post_init__(self):
        if self.utility not in UTILITIES:
            raise ValueError(f"unknown utility {self.utility!r}; valid: {', '.join(UTILITIES)}")
        for name in ("rounds", "num_arms", "prompts_per_round", "feature_dim", "steps_per_round", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"LabConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.relevant_dims <= self.feature_dim:
            raise ValueError(f"LabConfig.relevant_dims must be in [0, feature_dim={self.feature_dim}], got {self.relevant_dims}")
        if self.num_arms < 2:
            raise ValueError(f"LabConfig.num_arms must be >= 2 to duel, got {self.num_arms}")


def make_utility(key: jax.Array, cfg: LabConfig):
    """Latent utility u: features [..., d] -> [...], normalised to std utility_scale."""
    d = cfg.relevant_dims or cfg.feature_dim
    k1, k2, k3 = jax.random.split(key, 3)
    if cfg.utility == "linear":
        theta = jax.random.normal(k1, (d,))
        theta = cfg.utility_scale * theta / jnp.linalg.norm(theta)  # x ~ N(0, I): std(u) = scale
        return lambda x: x[..., :d] @ theta
    w1 = jax.random.normal(k1, (d, 32)) / np.sqrt(d)
    w2 = jax.random.normal(k2, (32,)) / np.sqrt(32)
    f = lambda x: jnp.tanh(x[..., :d] @ w1) @ w2  # noqa: E731
    std = jnp.std(f(jax.random.normal(k3, (4096, d))))
    return lambda x: cfg.utility_scale * f(x) / std


def sample_arms(key: jax.Array, shape: tuple[int, ...], cfg: LabConfig) -> jax.Array:
    x = jax.random.normal(key, (*shape, cfg.feature_dim))
    if cfg.arms == "sphere":
        x = x / jnp.linalg.norm(x, axis=-1, keepdims=True) * np.sqrt(cfg.feature_dim)
    return x


def _run_seed(strategy: str, cfg: LabConfig, key: jax.Array):
    """T rounds for one seed -> (pair regret [T], simple regret [T], final simple regret)."""
    T, P, M, d = cfg.rounds, cfg.prompts_per_round, cfg.num_arms, cfg.feature_dim
    k_u, k_erm, k_eval, k_run = jax.random.split(key, 4)
    u_fn = make_utility(k_u, cfg)
    erm = ERM.create(d, cfg.erm, k_erm)
    cap = T * P
    buf = (jnp.zeros((cap, d)), jnp.zeros((cap, d)), jnp.zeros((cap,)))

    def round_(carry, t):
        erm, (bfa, bfb, bp) = carry
        k_ctx, k_sel, k_lab, k_batch, k_upd = jax.random.split(jax.random.fold_in(k_run, t), 5)
        x = sample_arms(k_ctx, (P, M), cfg)
        u = u_fn(x)  # [P, M]
        r = rewards(erm.params, x)  # [K, P, M]
        pairs, _ = select_pairs(strategy, r, k_sel)
        a, b = pairs[:, 0], pairs[:, 1]
        u_a, u_b = u[jnp.arange(P), a], u[jnp.arange(P), b]
        u_star = jnp.max(u, axis=1)
        pair_regret = jnp.mean(u_star - 0.5 * (u_a + u_b))
        best = jnp.argmax(reward_mean(r), axis=1)
        simple_regret = jnp.mean(u_star - u[jnp.arange(P), best])
        label = jax.random.bernoulli(k_lab, jax.nn.sigmoid(u_a - u_b)).astype(jnp.float32)
        at = t * P
        bfa = jax.lax.dynamic_update_slice(bfa, x[jnp.arange(P), a], (at, 0))
        bfb = jax.lax.dynamic_update_slice(bfb, x[jnp.arange(P), b], (at, 0))
        bp = jax.lax.dynamic_update_slice(bp, label, (at,))
        n = (t + 1) * P
        idx = jax.random.randint(k_batch, (cfg.steps_per_round, cfg.batch_size), 0, n)
        erm, _ = update(erm, bfa[idx], bfb[idx], bp[idx], n, k_upd)
        return (erm, (bfa, bfb, bp)), (pair_regret, simple_regret)

    (erm, _), (pair_regret, simple_regret) = jax.lax.scan(round_, (erm, buf), jnp.arange(T))
    x = sample_arms(k_eval, (cfg.eval_contexts, M), cfg)
    u = u_fn(x)
    best = jnp.argmax(reward_mean(rewards(erm.params, x)), axis=1)
    final = jnp.mean(jnp.max(u, axis=1) - u[jnp.arange(cfg.eval_contexts), best])
    return pair_regret, simple_regret, final


@functools.partial(jax.jit, static_argnames=("strategy", "cfg"))
def _run_seeds(strategy: str, cfg: LabConfig, keys: jax.Array):
    return jax.vmap(lambda k: _run_seed(strategy, cfg, k))(keys)


def run_lab(strategies=LAB_STRATEGIES, seeds=5, rounds: int | None = None, config: LabConfig | None = None, **overrides):
    """Run every strategy on the same seeds -> {strategy: {cumulative_regret [S, T],
    simple_regret [S, T], final_simple_regret [S], seconds}}.

    seeds: an int (0..seeds-1) or a list of ints. rounds and any LabConfig field given as a
    keyword override `config`. The same seed gives every strategy the same utility, contexts
    and ERM initialisation.
    """
    cfg = config or LabConfig()
    if rounds is not None:
        overrides["rounds"] = rounds
    cfg = dataclasses.replace(cfg, **overrides)
    strategies = [strategies] if isinstance(strategies, str) else list(strategies)
    bad = [s for s in strategies if s not in LAB_STRATEGIES]
    if bad:
        raise ValueError(f"unknown lab strategies {bad}; valid: {', '.join(LAB_STRATEGIES)}")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ValueError("run_lab needs at least one seed")
    keys = jnp.stack([jax.random.key(s) for s in seed_list])
    results = {}
    for s in strategies:
        t0 = time.perf_counter()
        pair_regret, simple_regret, final = jax.block_until_ready(_run_seeds(s, cfg, keys))
        results[s] = {
            "cumulative_regret": np.cumsum(np.asarray(pair_regret), axis=1),
            "simple_regret": np.asarray(simple_regret),
            "final_simple_regret": np.asarray(final),
            "seconds": time.perf_counter() - t0,
        }
    return results


def summary_rows(results: dict) -> list[dict]:
    """One row per strategy: means (and std over seeds) of final cumulative and simple regret."""
    base = results.get("passive", {}).get("cumulative_regret")
    rows = []
    for s, res in results.items():
        cum = res["cumulative_regret"][:, -1]
        row = {
            "strategy": s,
            "cum_regret": f"{cum.mean():.2f} ± {cum.std():.2f}",
            "simple_regret": f"{res['final_simple_regret'].mean():.3f} ± {res['final_simple_regret'].std():.3f}",
            # the change in cumulative regret against passive: -75% = a quarter of passive's regret
            "cum_regret vs passive": "" if base is None else f"{100 * (cum.mean() / base[:, -1].mean() - 1):+.0f}%",
            "seconds": f"{res['seconds']:.1f}",
        }
        rows.append(row)
    return rows


def plot(results: dict, path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for s, res in results.items():
        for ax, key in ((ax1, "cumulative_regret"), (ax2, "simple_regret")):
            y = res[key]
            if key == "simple_regret":  # running mean over 10 rounds, readable curves
                w = min(10, y.shape[1])
                y = np.stack([np.convolve(row, np.ones(w) / w, mode="valid") for row in y])
            m, se = y.mean(0), y.std(0) / np.sqrt(y.shape[0])
            t = np.arange(1, len(m) + 1) + (res[key].shape[1] - len(m))
            ax.plot(t, m, label=s)
            ax.fill_between(t, m - se, m + se, alpha=0.2)
    ax1.set(xlabel="round", ylabel="cumulative regret of the dueled pair", title="explore & exploit")
    ax2.set(xlabel="round", ylabel="simple regret of the ERM's best arm", title="best-arm identification")
    ax1.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

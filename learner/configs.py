"""The run config (duel.config.Config) mapped onto the library's configs: TrainConfig, ERMConfig.

No Ray here: bench/memory.py builds the learner's exact TrainConfig on a GPU image without Ray.
"""

from __future__ import annotations


def train_config(cfg):
    """The policy train step's TrainConfig for a run config (what the learner trains with)."""
    from duel.train import TrainConfig

    return TrainConfig(
        loss=cfg.loss.kind, beta=cfg.loss.beta, label_smoothing=cfg.loss.label_smoothing,
        flip_rate=cfg.loss.label_smoothing, gamma=cfg.loss.simpo_gamma, alpha=cfg.loss.xpo_alpha,
        nll_weight=cfg.loss.nll_weight,
        learning_rate=cfg.optim.lr, warmup_steps=cfg.optim.warmup_steps, total_steps=cfg.steps,
        min_lr_ratio=cfg.optim.min_lr_ratio, weight_decay=cfg.optim.weight_decay,
        clip_norm=cfg.optim.clip_norm or None, micro_batches=cfg.optim.micro_batches,
        remat=cfg.optim.remat, compute_dtype=cfg.policy.compute_dtype, seed=cfg.seed)


def erm_config(cfg):
    """The ensemble reward model's duel.ensemble.ERMConfig for a run config's `erm:` section
    (duel.config.ERMSection): bootstrap on = each member sees each pair with probability 1/2."""
    from duel.ensemble import ERMConfig

    e = cfg.erm
    return ERMConfig(num_members=e.num_members, hidden=tuple(e.hidden), learning_rate=e.lr,
                     anchor_lambda=e.anchor_lambda, steps_per_update=e.steps_per_update,
                     bootstrap_p=0.5 if e.bootstrap else 1.0)

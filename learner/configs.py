"""The run config (duel.config.Config) as the library's configs: TrainConfig, ERMConfig.

A library config's field has the name of the run config key it comes from (one name per concept:
`erm.lr` is `ERMConfig.lr`, `optim.lr` is `TrainConfig.lr`); each is passed by that name here, so
that tests/duel/test_config_leaves.py sees every key read. The only other names:
`TrainConfig.loss` is `loss.kind`, `TrainConfig.total_steps` is the run's `steps` (the length of the
learning-rate schedule) and `TrainConfig.compute_dtype` is `policy.compute_dtype`. The schedule
counts optimizer updates and the run config counts loop steps: with `replay.updates` the learner
makes 1 + replay.updates updates per loop step, so `steps` and `optim.warmup_steps` are multiplied
by that here (without replay they pass unchanged).

No Ray here: bench/memory.py builds the learner's exact TrainConfig on a GPU image without Ray.
"""

from __future__ import annotations


def train_config(cfg):
    """The policy train step's TrainConfig for a run config (what the learner trains with):
    the `loss:` and `optim:` sections, the run's `steps`, `seed` and `policy.compute_dtype`."""
    from duel.train import TrainConfig

    loss = cfg.loss
    o = cfg.optim
    per_step = 1 + cfg.replay.updates  # optimizer updates per loop step (learner.Learner.update)
    return TrainConfig(
        loss=loss.kind, beta=loss.beta, label_smoothing=loss.label_smoothing,
        simpo_gamma=loss.simpo_gamma, xpo_alpha=loss.xpo_alpha, nll_weight=loss.nll_weight,
        lr=o.lr, warmup_steps=o.warmup_steps * per_step, min_lr_ratio=o.min_lr_ratio,
        weight_decay=o.weight_decay, clip_norm=o.clip_norm, micro_batches=o.micro_batches,
        remat=o.remat, total_steps=cfg.steps * per_step, compute_dtype=cfg.policy.compute_dtype, seed=cfg.seed)


def erm_config(cfg):
    """The ensemble reward model's duel.ensemble.ERMConfig for a run config's `erm:` section
    (duel.config.ERMSection; its buffer_size and encoder are the learner's and the generators')."""
    from duel.ensemble import ERMConfig

    e = cfg.erm
    return ERMConfig(num_members=e.num_members, hidden=e.hidden, lr=e.lr, anchor_lambda=e.anchor_lambda,
                     steps_per_update=e.steps_per_update, bootstrap=e.bootstrap)


def reference_schedule(cfg):
    """The reference schedule (duel.reference.ReferenceSchedule) of a run config's `reference:`
    section; `every: 0` (the key's default, read by stepwise only) is every step."""
    from duel.reference import ReferenceSchedule

    r = cfg.reference
    return ReferenceSchedule(schedule=r.schedule, tau=r.tau, every=max(r.every, 1))

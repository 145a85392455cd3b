"""Reference-policy update schedules, as pure functions on parameter pytrees.

The reference pi_ref anchors the preference loss. Schedules (config names):

    fixed     pi_ref = the initial policy, never updated
    behavior  pi_ref = the last published policy (BPO-style trust region around the behaviour
              policy): refreshed to the policy on every publish
    ema       pi_ref <- (1 - tau) pi_ref + tau pi, on every update
    stepwise  pi_ref <- pi every `every` learner steps (sDPO-style)

`init_reference(params)` starts the state from the initial policy; `update_reference(schedule,
state, policy_params, step)` is called after the policy update that produced learner step `step`
(1-based: the first update is step 1) with the parameters that are published as that version.
Both are jittable (`step` may be traced) and return new pytrees; nothing is mutated.

Under LoRA (`policy.lora`, duel.models.lora) the policy parameters are the adapters (A, B) and
so is the reference: `fixed` is the frozen base with the adapters off (B = 0 at the start; the
learner keeps no reference state at all), `behavior` / `stepwise` copy the adapters (exactly the
policy of that step), `ema` averages A and B separately (base + (alpha/r) EMA(A) EMA(B): rank r,
an adapter-sized copy, not the EMA of the merged weights). No schedule keeps a second base.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

SCHEDULES = ("fixed", "behavior", "ema", "stepwise")


@dataclasses.dataclass(frozen=True)
class ReferenceSchedule:
    """Which schedule (the run config's `reference.schedule`), with its one parameter: `tau` for
    ema, `every` for stepwise."""

    schedule: str = "fixed"
    tau: float = 0.01
    every: int = 100

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown reference schedule {self.schedule!r}; valid schedules: {', '.join(SCHEDULES)}")
        if self.schedule == "ema" and not 0.0 <= self.tau <= 1.0:
            raise ValueError(f"reference schedule 'ema' needs 0 <= tau <= 1, got {self.tau}")
        if self.schedule == "stepwise" and int(self.every) < 1:
            raise ValueError(f"reference schedule 'stepwise' needs every >= 1, got {self.every}")


@struct.dataclass
class ReferenceState:
    """The reference parameters and the learner step at which they were last replaced."""

    params: object
    refreshed_at: jax.Array  # int32 scalar; 0 = the initial policy


def _copy(tree):
    return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


def init_reference(policy_params) -> ReferenceState:
    """The reference starts as a copy of the initial policy (every schedule)."""
    return ReferenceState(params=_copy(policy_params), refreshed_at=jnp.zeros((), jnp.int32))


def ema(ref_params, policy_params, tau):
    """(1 - tau) * ref + tau * policy, leaf by leaf, in the reference's dtype."""
    return jax.tree.map(
        lambda r, p: ((1.0 - tau) * r.astype(jnp.float32) + tau * p.astype(jnp.float32)).astype(r.dtype),
        ref_params,
        policy_params,
    )


def update_reference(schedule: ReferenceSchedule, state: ReferenceState, policy_params, step) -> ReferenceState:
    """The reference after learner step `step` produced `policy_params` (see the module doc)."""
    step = jnp.asarray(step, jnp.int32)
    name = schedule.schedule
    if name == "fixed":
        return state
    if name == "behavior":
        params = jax.tree.map(lambda r, p: jnp.array(p, dtype=r.dtype, copy=True), state.params, policy_params)
        return ReferenceState(params=params, refreshed_at=step)
    if name == "ema":
        return ReferenceState(params=ema(state.params, policy_params, schedule.tau), refreshed_at=step)
    # stepwise: replace the reference when step is a positive multiple of `every`
    refresh = jnp.logical_and(step > 0, step % schedule.every == 0)
    params = jax.tree.map(lambda r, p: jnp.where(refresh, p.astype(r.dtype), r), state.params, policy_params)
    return ReferenceState(params=params, refreshed_at=jnp.where(refresh, step, state.refreshed_at))

"""The central learner: float32 policy + AdamW, ERM + replay buffer, ledger writer, reference.

    learner = Learner(cfg, model_dir, run_dir)
    learner.update(labeled, step)   # ledger append + fsync FIRST, then ERM and policy updates
    ref = learner.publish()         # weights of the current version in the object store, once

One `update` is one learner step and makes one new weights version. The ledger holds exactly
the paid queries (synthetic and reused labels are not written again), appended and fsynced
before any label is used (invariant 2). Every random draw is keyed by (seed, step).
`LearnerActor` is the same class as a Ray actor; the loop places it with the layout.

`learner.sharding` (dp | fsdp) lays the policy, its AdamW state and the reference over a mesh of
every device (duel.sharding) and runs the same train step through `make_sharded_step`. With
`learner.processes` > 1 the learner is that many JAX processes (`LearnerProcess` actors, one
mesh): every rank gets the same calls with the same inputs and computes the same ERM, rank 0
alone writes the ledger and publishes; checkpoints are written by all ranks together (Orbax).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import ray

from duel.digest import checksum, flat_weights
from duel.keys import KEY_LEARN, step_key
from learner.configs import erm_config, reference_schedule, train_config  # noqa: F401  (train_config: also imported from here)
from learner.labeling import ensemble_vs_oracle
from learner.steps import LearnerStep, RunCounters
from learner.transport_ray import RayTransport

ERM_BATCH = 64  # pairs per ERM Adam step (sampled from the replay buffer)


def pad_rows(tree, rows: int):
    """Pad the leading axis of every leaf to `rows` (zeros: weight 0 masks the padding)."""
    def pad(x):
        x = np.asarray(x)
        return np.concatenate([x, np.zeros((rows - x.shape[0], *x.shape[1:]), x.dtype)]) \
            if x.shape[0] < rows else x
    return jax.tree.map(pad, tree)


class Learner:
    def __init__(self, cfg, model_dir: str, run_dir: str, *, checksums: bool = False,
                 readonly: bool = False):
        from duel.ensemble import ERM, ReplayBuffer
        from duel.ledger import Ledger
        from duel.models import load_pretrained
        from duel.reference import init_reference
        from duel.train import init_train_state

        self.cfg = cfg
        self.run_dir = str(run_dir)
        self.tcfg = train_config(cfg)
        from duel.models.lora import from_config as lora_spec

        self.lora = lora_spec(cfg.policy)
        # LoRA: the frozen base is held in the compute dtype (no float32 master: it is never
        # updated); only the adapters are float32 masters with AdamW state (duel.models.lora).
        # eval and export (readonly) read it in float32: the merged export is W + A B exactly
        dtype = jnp.float32 if self.lora is None or readonly else getattr(jnp, cfg.policy.compute_dtype)
        model, self.model_config = load_pretrained(model_dir, dtype=dtype)
        if self.lora is not None:
            from duel.models.lora import attach

            attach(model, self.lora, seed=cfg.seed)
        from learner.setup import feature_dim

        self.feature_dim = feature_dim(cfg, self.model_config)  # erm.encoder's width when set
        self.rank, self.processes = jax.process_index(), jax.process_count()
        self.strategy = cfg.learner.sharding
        self.mesh, self._train_step = self._layout(cfg, readonly)
        self.state = self._on_mesh(init_train_state(model, self.tcfg))
        self.schedule = reference_schedule(cfg)
        self.reference = None if self.schedule.schedule == "fixed" else self._on_mesh(init_reference(self.state.params))
        # eval.ema: the Polyak average of the policy that eval reads (duel.train.polyak_update);
        # its first update replaces this copy, so the starting weights get no weight in it
        self.average = jax.tree.map(lambda x: jnp.array(x, copy=True), self.state.params) if cfg.eval.ema else None
        self.erm = ERM.create(self.feature_dim, erm_config(cfg), step_key(cfg.seed, 0, KEY_LEARN, 1))
        self.buffer = ReplayBuffer(cfg.erm.buffer_size, self.feature_dim)
        self.replay = None  # label replay for extra policy updates (duel.replay)
        if cfg.replay.updates:
            from duel.replay import PairReplay
            from learner.setup import prompt_width

            self.replay = PairReplay(cfg.replay.capacity)
            self.replay.allocate(prompt_width(cfg, model_dir), cfg.sampling.max_new_tokens)
        self.ledger = Ledger(run_dir, readonly=readonly or self.rank > 0)  # rank 0 writes it
        self._host = None  # (version, host params) gathered from every process
        self.model_dir = str(model_dir)
        self._evaluator = None
        self.counters = RunCounters()  # the run's counters: this learner owns them
        self.checksums = checksums
        self.publish_dtype = None if cfg.policy.compute_dtype == "float32" else cfg.policy.compute_dtype
        self._published = None  # (version, ObjectRef)
        self._transport = RayTransport(self.publish_dtype)  # keeps its CPU staging buffers across versions
        self.publish_bytes = 0

    @property
    def version(self) -> int:
        return self.counters.version

    # -- layout --------------------------------------------------------------------------------

    def _layout(self, cfg, readonly: bool = False):
        """-> (mesh or None, step(state, batch) -> (state, metrics)) for `learner.sharding`."""
        from duel.config import check_learner_devices
        from duel.sharding import make_mesh, make_sharded_step
        from duel.train import train_step

        from duel.config import ConfigError

        if cfg.learner.processes != self.processes and not readonly:  # eval/export: any count
            raise ConfigError(f"{self.run_dir}/config.yaml: key 'learner.processes' is {cfg.learner.processes} "
                              f"but this learner runs in {self.processes} JAX process(es); a learner of "
                              f"several processes is started by the loop (learner.loop) or under SLURM")
        if self.strategy == "none":
            return None, lambda state, batch: train_step(state, batch, self.tcfg)
        mesh = make_mesh(self.strategy)
        check_learner_devices(cfg, mesh.size, f"{self.run_dir}/config.yaml",
                              f"{self.processes} process(es) x {jax.local_device_count()} device(s)")
        return mesh, make_sharded_step(mesh, self.strategy, self.tcfg,
                                       min_shard_size=cfg.learner.min_shard_size)

    def _on_mesh(self, tree):
        """A TrainState or ReferenceState in the learner's layout (unchanged without a mesh)."""
        from duel.reference import ReferenceState
        from duel.sharding import place, place_params, replicated, shard_train_state

        if self.mesh is None:
            return tree
        if isinstance(tree, ReferenceState):
            return ReferenceState(
                params=place_params(tree.params, self.mesh, self.strategy, self.cfg.learner.min_shard_size),
                refreshed_at=place(tree.refreshed_at, replicated(self.mesh)))
        return shard_train_state(tree, self.mesh, self.strategy, self.cfg.learner.min_shard_size)

    def _device_batch(self, batch):
        """Host PairTensors -> device arrays: on the mesh, each device takes its rows of the whole
        batch (every learner process holds all of it)."""
        from duel.sharding import place_batch

        if self.mesh is None:
            return jax.tree.map(jnp.asarray, batch)
        return place_batch(batch, self.mesh, self.strategy)

    def host_params(self):
        """The policy parameters for publishing and evaluation. One process: the parameters as
        they are (`jax.device_get` gathers a sharded array). Several processes: a host copy
        gathered from every rank, cached per version; every rank must call it (a collective)."""
        from duel.sharding import gather

        if self.processes == 1:
            return self.state.params
        if self._host is None or self._host[0] != self.version:
            self._host = (self.version, gather(self.state.params))
        return self._host[1]

    # -- labels --------------------------------------------------------------------------------

    def lookup(self, pair_ids: list[str]) -> dict:
        """Ledger entries for the given pair ids that are already stored (a resumed run reuses them)."""
        out = {}
        for pid in pair_ids:
            e = self.ledger.get(pid)
            if e is not None:
                out[pid] = {"prob_a": e.prob_a, "label": e.label, "metadata": e.metadata,
                            "tokens_a": e.tokens_a, "tokens_b": e.tokens_b, "version": e.version}
        return out

    def ledger_count(self) -> int:
        return len(self.ledger)

    def record(self, labeled, step: int) -> int:
        """Append the oracle answers of a step that stops before its update (the oracle pool gave
        up midway): paid, so kept for the resumed run to reuse (invariant 2); nothing is learned.
        -> entries written (rank 0 writes the ledger)."""
        from duel.ledger import entries_from_batch

        if self.ledger.readonly:
            return 0
        entries = entries_from_batch(labeled, step)
        self.ledger.append(entries)
        return len(entries)

    # -- the update ----------------------------------------------------------------------------

    def update(self, labeled, step: int) -> dict:
        """One learner step on a LabeledBatch -> metrics. Ledger first (fsynced), then learning;
        the counters count the step once it is learned from."""
        from duel.ledger import entries_from_batch

        t0 = time.perf_counter()
        if self.rank == 0:  # other ranks cannot finish a step before rank 0 (collectives)
            self.ledger.append(entries_from_batch(labeled, step))  # invariant 2: durable before use
        pb = labeled.pairs
        answered = ~np.isnan(np.asarray(labeled.prob_a, np.float32))
        real = ~np.asarray(pb.synthetic, bool) & answered & ~np.asarray(pb.identical, bool)  # oracle labels
        t_ledger = time.perf_counter() - t0
        metrics = self._update_erm(labeled, real, step)
        metrics.update(self._synthetic_vs_gold(labeled))
        metrics.update(ensemble_vs_oracle(labeled, real, self.cfg.mixed.min_confidence))
        metrics.update(self._update_policy(labeled, answered, real, step))
        self.counters = self.counters.after(labeled, step)
        metrics["time_ledger"] = t_ledger
        metrics["time_learn"] = time.perf_counter() - t0
        return metrics

    def _synthetic_vs_gold(self, labeled) -> dict:
        """How right the ERM's synthetic labels are, where the oracle is a rule on the gold reward
        (`oracle.kind: task` or `rule`, a simulated oracle: asking it is free and is no query):
        `synthetic_gold_agree`, the share of this step's synthetic pairs whose label (the
        response the policy is trained towards) has the higher gold reward, over pairs whose gold
        rewards differ, and `synthetic_gold_ties`, the share with equal gold rewards. A
        diagnostic only; nothing learns from it. {} without synthetic pairs or such an oracle."""
        from learner.labeling import synthetic_vs_gold

        if not np.any(labeled.pairs.synthetic) or self.rank > 0 or self.cfg.oracle.kind not in ("task", "rule"):
            return {}
        if self._evaluator is None:
            from learner.evaluation import Evaluator

            self._evaluator = Evaluator(self.cfg, self.model_dir)
        return synthetic_vs_gold(labeled, self._evaluator.oracle.rewards)  # kinds task/rule: a RuleOracle

    def _update_erm(self, labeled, real: np.ndarray, step: int) -> dict:
        """ERM on oracle labels only (never its own synthetic ones), from the replay buffer."""
        from duel.ensemble import update as erm_update

        pb = labeled.pairs
        k_erm, k_buf = jax.random.split(step_key(self.cfg.seed, step, KEY_LEARN))
        if real.any():
            feats = pb.candidates.features
            rows = np.flatnonzero(real)
            self.buffer.add(feats[rows, pb.pairs[rows, 0]], feats[rows, pb.pairs[rows, 1]],
                            np.asarray(labeled.label, np.float32)[rows])
        if not len(self.buffer):
            return {}
        s = self.cfg.erm.steps_per_update
        fa, fb, p = self.buffer.sample(k_buf, ERM_BATCH, num_batches=s)
        self.erm, em = erm_update(self.erm, fa, fb, p, self.buffer.total, k_erm, steps=s)
        return {(k if k.startswith("erm_") else f"erm_{k}"): float(v) for k, v in em.items() if np.ndim(v) == 0}

    def _update_policy(self, labeled, answered: np.ndarray, real: np.ndarray, step: int) -> dict:
        """Policy step: hard labels decide chosen/rejected; skipped answers weigh 0; then the
        label replay's extra updates on oracle-labelled pairs (`real`)."""
        from duel.config import prompts_at
        from duel.reference import update_reference
        from duel.train import pairs_from_labeled, with_reference

        batch = pairs_from_labeled(labeled, soft=False)
        batch = batch.replace(weight=np.asarray(batch.weight) * answered)
        host_batch = batch
        batch = self._device_batch(pad_rows(batch, prompts_at(self.cfg, step)))
        if self.reference is not None:
            batch = with_reference(batch, self.state, self.reference.params, self.tcfg)
        pm = self._step(batch)
        metrics = {k: float(v) for k, v in pm.items() if np.ndim(v) == 0}
        if self.replay is not None:
            metrics.update(self._replay_updates(host_batch, real, step))
        if self.reference is not None:
            self.reference = self._on_mesh(
                update_reference(self.schedule, self.reference, self.state.params, step + 1))
        return metrics

    def _step(self, batch) -> dict:
        """One optimizer update of the policy (and of its eval average) -> the step's metrics."""
        from duel.train import polyak_update

        self.state, metrics = self._train_step(self.state, batch)
        if self.average is not None:
            self.average = polyak_update(self.average, self.state.params, self.state.step, self.cfg.eval.ema)
        return metrics

    def _replay_updates(self, batch, real: np.ndarray, step: int) -> dict:
        """Add this step's oracle-labelled pairs to the replay, then `replay.updates` more policy
        updates on pairs drawn from it. No oracle call, no query counted (duel.replay)."""
        from duel.config import prompts_at
        from duel.keys import step_rng
        from duel.train import with_reference

        self.replay.add(batch.replace(weight=np.asarray(batch.weight) * real))
        if not len(self.replay):
            return {"replay_size": 0}
        rng = step_rng(self.cfg.seed, step, KEY_LEARN, 1)
        losses = []
        rows = self.cfg.replay.batch or prompts_at(self.cfg, step)
        for _ in range(self.cfg.replay.updates):
            rb = self._device_batch(self.replay.sample(rng, rows))
            if self.reference is not None:
                rb = with_reference(rb, self.state, self.reference.params, self.tcfg)
            rm = self._step(rb)
            losses.append(rm["loss"])  # read once after the loop: no device sync per update
        return {"replay_size": len(self.replay), "replay_loss": float(jnp.mean(jnp.stack(losses)))}

    def update_and_publish(self, labeled, step: int) -> LearnerStep:
        """`update` then `publish` in one call -> LearnerStep (metrics with time_put, the run
        counters after this update, [ObjectRef] of the new version)."""
        metrics = self.update(labeled, step)
        t0 = time.perf_counter()
        refs = self.publish_group()
        metrics["time_put"] = time.perf_counter() - t0
        return LearnerStep(metrics=metrics, counters=self.counters, refs=refs)

    def update_and_pack(self, labeled, step: int) -> tuple:
        """`update`, then the new version's weights as this call's own first return ->
        (duel.transport.Packed, LearnerStep with refs []); one learner process only.

        The loop calls it with `num_returns=2` and passes the first ObjectRef to the
        generators' next `step` before this call ends: Ray stores the Packed as the call
        returns and hands it to the generators from there, without a stop in the driver
        (learner/loop.py, `pipeline`). time_put is the pack alone (the copy into the object
        store is Ray's, after the return)."""
        if self.processes > 1:
            raise RuntimeError("update_and_pack: a learner of several processes publishes with update_and_publish")
        metrics = self.update(labeled, step)
        t0 = time.perf_counter()
        packed = self._pack()
        metrics["time_put"] = time.perf_counter() - t0
        return packed, LearnerStep(metrics=metrics, counters=self.counters, refs=[])

    def publish_group(self):
        """`publish` for a learner of any number of processes -> [ObjectRef] on rank 0, [] on
        the others. With fsdp over several processes every rank first takes part in gathering
        the parameters (`host_params`); rank 0 alone puts them in the object store."""
        if self.processes > 1:
            if self.strategy == "fsdp":
                self.host_params()
            if self.rank > 0:
                return []
        return self.publish()

    # -- weights -------------------------------------------------------------------------------

    def publish(self):
        """-> [ObjectRef] of the current version's duel.transport.Packed: the policy cast to the
        publish dtype in bucketed host buffers (learner/transport_ray.py), with extras
        {"erm": ERM params (NumPy), "checksum": digest of the published weights or ""}.

        One `ray.put` per version (a second call returns the same object)."""
        if self._published is not None and self._published[0] == self.version:
            return [self._published[1]]
        packed = self._pack()
        ref = ray.put(packed) if self.rank == 0 else None
        self._published = (self.version, ref)
        return [ref]

    def _pack(self):
        """The current version's duel.transport.Packed (see `publish`); every rank must call it
        (gathering a sharded policy is a collective)."""
        from duel.transport import host

        params = self.host_params()
        extras = {"erm": host(self.erm.params), "checksum": ""}
        if self.checksums:  # tests: which weights a generator must hold after loading this version
            from duel.train import cast_floating

            extras["checksum"] = checksum(flat_weights(
                params if self.publish_dtype is None else cast_floating(params, self.publish_dtype)))
        packed = self._transport.pack(params, self.version, extras)
        self.publish_bytes = self._transport.last_bytes
        return packed

    def weights_checksum(self) -> str:
        """Digest of the float32 policy (several processes: after this version's publish, or on
        every rank: gathering is a collective)."""
        return checksum(flat_weights(self.host_params()))

    def erm_checksum(self) -> str:
        from duel.transport import host

        return checksum(flat_weights(host({"params": self.erm.params, "opt": self.erm.opt_state})))

    def get_counters(self) -> RunCounters:
        return self.counters

    # -- checkpoints ---------------------------------------------------------------------------

    def _split_rest(self):
        """(frozen LoRA base, the rest of state.rest): checkpoints keep the second only; the
        base is the model directory's, read again on restore."""
        from flax import nnx

        from duel.models.lora import Frozen

        return nnx.split_state(self.state.rest, Frozen, ...)

    def _tree(self) -> dict:
        """What a checkpoint holds; the eval average only where eval.ema keeps one (so the
        checkpoints of runs without it keep their structure)."""
        tree = {"policy": {"step": self.state.step, "params": self.state.params,
                           "opt_state": self.state.opt_state, "rest": self._split_rest()[1]},
                "reference": None if self.reference is None else self.reference,
                "erm": self.erm, "buffer": self.buffer.state_dict(),
                "replay": None if self.replay is None else self.replay.state_dict()}
        if self.average is not None:
            tree["average"] = self.average
        return tree

    def save(self, step: int, meta: dict) -> str:
        """Checkpoint `step`; the run counters go in meta["counters"] next to what the loop
        keeps there (the prompt stream's position)."""
        from duel.checkpoint import save

        meta = {**meta, "counters": {**self.counters.as_dict(), **meta.get("counters", {})}}
        return str(save(self.run_dir, step, self._tree(), meta, keep=self.cfg.checkpoint.keep))

    def restore(self) -> dict | None:
        """Restore the newest valid checkpoint; -> its meta (+ "refused" messages), or None."""
        from duel.checkpoint import restore
        from duel.ensemble import ReplayBuffer

        r = restore(self.run_dir, self._tree())
        if r is None:
            return None
        t = r.state
        from flax import nnx

        rest = nnx.merge_state(self._split_rest()[0], t["policy"]["rest"])
        self.state = self.state.replace(step=t["policy"]["step"], params=t["policy"]["params"],
                                        opt_state=t["policy"]["opt_state"], rest=rest)
        self.reference = t["reference"]
        self.average = t.get("average")
        self.erm = t["erm"]
        self.buffer = ReplayBuffer.from_state_dict(t["buffer"])
        if self.replay is not None:
            self.replay.load_state_dict(t["replay"])
        self.counters = RunCounters.from_dict(r.meta["counters"])
        self._published = None
        self._host = None
        return {**r.meta, "checkpoint_step": r.step, "refused": list(r.refused)}

    def evaluate(self, step: int) -> dict:
        """Win rates of the current policy, or of its Polyak average with eval.ema
        (learner/evaluation.py); {} on ranks > 0."""
        from learner.evaluation import Evaluator

        model = self.policy_model(average=self.average is not None)  # several processes: a collective
        if self.rank > 0:
            return {}
        if self._evaluator is None:
            self._evaluator = Evaluator(self.cfg, self.model_dir)
        return self._evaluator.evaluate(model, step)

    def policy_model(self, average: bool = False):
        """The current policy as a live module, or with `average` its Polyak average (eval.ema);
        with several processes a copy on this process's first device, built from `host_params`
        or the gathered average (every rank must call it)."""
        from duel.config import ConfigError
        from duel.sharding import gather
        from duel.train import merge_model, model_from_state

        if average and self.average is None:
            raise ConfigError(f"{self.run_dir}/config.yaml: key 'eval.ema' is 0, so this run keeps no "
                              "average of its policy; set eval.ema (e.g. 0.95) before the run to keep one")
        if self.processes == 1:
            return model_from_state(self.state.replace(params=self.average) if average else self.state)
        device = jax.local_devices()[0]
        params = gather(self.average) if average else self.host_params()
        return merge_model(self.state.graphdef, jax.device_put(params, device),
                           jax.device_put(gather(self.state.rest), device))

    def ping(self) -> dict:
        return {"node_id": ray.get_runtime_context().get_node_id()}


LearnerActor = ray.remote(num_cpus=0, max_restarts=0)(Learner)

"""The loop that drives the actors: `run_experiment(config, run_dir)`.

One step: prompts (seeded permutation, explicit position) -> generators (M candidates, frozen
pass, pair selection) -> label stage (ledger reuse, oracle pool, ERM-labelled synthetic pairs)
-> learner update (ledger fsync first) -> publish version v+1 -> generators load it.

Sync mode is this pipeline with depth 0: generation for step t+1 starts after version t+1 is
published, so every sample is on-policy and a fixed seed gives a deterministic run. With one
learner process the loop sends step t+1's generation together with the update of step t: the
learner returns the new weights as an ObjectRef the generators' calls already hold, so Ray hands
them over the moment the update ends, while the driver reads the learner's answer, writes the
metrics and checkpoints (`pipeline`; the samples and the run are the same either way). Async mode
keeps up to `max_staleness` steps of generation in flight while the learner learns: a sample
used at learner version v was drawn from version >= v - max_staleness (checked, invariant 4).
Every key derives from (seed, step) with fold_in; a checkpoint stores the prompt position of
the first step not yet learned from, so a resumed run replays exactly.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
import warnings
from collections import deque
from pathlib import Path

import ray

from actors.generator import Generator, GeneratorSpec, StaleWeights
from actors.oracle import OracleActor, OraclePool, OracleSpec, OracleUnavailable
from duel.checkpoint import CheckpointWriteError
from duel.config import prompts_at
from duel.ledger import LedgerError
from duel.data import PromptStream, shard_bounds
from duel.records import PairBatch
from learner.labeling import label_pairs
from learner.group import LearnerGroup
from learner.placement import Layout, role_specs
from learner.setup import RunInputs, enable_compile_cache, prepare_inputs
from learner.steps import Generated, Job, LearnerStep, RunCounters


class RunStopped(RuntimeError):
    """The run checkpointed and stopped before its last step (signal, oracle outage, quit).

    `resumable` is False when a resume would fail the same way (an oracle that is a local
    function raising on its input): `duel` then suggests no resume and exits 1."""

    def __init__(self, message: str = "", resumable: bool = True):
        super().__init__(message)
        self.resumable = resumable


# what a local oracle (oracle.kind task/rule: a function of prompt and response) raises on input
# it cannot grade or through a bug in it: asked the same pairs again, it raises again
_NOT_AN_OUTAGE = (ValueError, TypeError, KeyError, IndexError, AttributeError, ArithmeticError)


def init_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Join `address` or start an embedded local Ray; -> True when this call started Ray.

    Without an address the run gets a Ray of its own (`address="local"`): it never attaches
    to another Ray instance that happens to run on the machine (RAY_ADDRESS, `ray start`)."""
    if ray.is_initialized():
        return False
    enable_compile_cache()
    kwargs = {"include_dashboard": False, "log_to_driver": True, "configure_logging": False}
    with quiet_ray_start():
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), **kwargs)
            from learner import ray_reaper

            ray_reaper.start()  # its agents end with this process, even one SIGKILLed
    return True


@contextlib.contextmanager
def quiet_ray_start():
    """Around ray.init, two notices that are not the user's concern are silenced, for this call
    only:

    - JAX warns "os.fork() was called ... will likely lead to a deadlock" on any fork once its
      runtime started in this process. ray.init forks only through subprocess.Popen (GCS,
      raylet), whose child execs at once and never runs JAX or Python code, so that deadlock
      cannot happen (a fork anywhere else still warns). The driver itself starts no JAX before
      Ray does (learner.setup.build_starting_policy trains in a child process).
    - Ray logs "Token authentication is enabled for this Ray cluster ..." on every start of a
      local cluster: the notice of its own default (a token in ~/.ray/auth_token), which
      stays in force; only the notice is dropped. Setting RAY_AUTH_MODE would drop it too,
      but Ray reads it at import, before this runs."""
    import logging

    auth = logging.getLogger("ray._private.authentication.authentication_token_setup")
    level = auth.level
    auth.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
            yield
    finally:
        auth.setLevel(level)


def run_experiment(config, run_dir, *, address: str | None = None, resume: bool | None = None,
                   placement: dict | None = None, hooks: dict | None = None,
                   pipeline: bool = True) -> dict:
    """Run (or continue) an experiment; -> summary {"step", "queries", "synthetic", "final_eval", ...}.

    resume: None = continue when RUN_DIR has a checkpoint, True = require one, False = refuse one.
    placement: extra per-role Ray options {"learner"|"generator"|"oracle": {"num_cpus",
    "num_gpus", "resources"}} on top of `config.resources`.
    hooks: test hooks, {"after_step": fn(loop, step), "after_submit": fn(loop, job)} (a job
    is one step's generation in flight: {"step", "batch", "futs", ...}).
    pipeline: send the next step's generation with the learner's update (see the module
    docstring; used with one learner process). False: wait for the learner's answer first (the
    order before issue 17, kept for bench/loop.py's comparison).
    """
    # one process per run directory: prepare_inputs takes RUN_DIR/.lock before its first write
    # (bad input writes nothing), `held` keeps it until the run ends
    with contextlib.ExitStack() as held:
        inputs = prepare_inputs(config, Path(run_dir), resume=resume, hold=held)  # before Ray starts
        return _run(inputs, address, placement, hooks, pipeline)


def _run(inputs, address, placement, hooks, pipeline) -> dict:
    config = inputs.cfg
    say(f"starting Ray ({'at ' + address if address else 'local'})")
    started = init_ray(address)
    # SIGTERM during start-up (actors starting, restore) ends like Ctrl-C: KeyboardInterrupt,
    # Ray shut down below (instead of the C++ stack dump of the handler Ray's runtime installs);
    # once stepping, Loop.run's handlers checkpoint and stop
    old = _interrupt_on_sigterm()
    loop = None
    try:
        r = config.resources
        say(f"starting the actors: {config.learner.processes} learner, {r.generators} "
            f"generator{'s' * (r.generators != 1)}, {r.oracle_actors} oracle")
        loop = Loop(inputs, placement=placement, hooks=hooks or {}, pipeline=pipeline)
        say("step 1 compiles first (minutes on a fresh compile cache, seconds once cached)")
        return loop.run()
    finally:
        if loop is not None:
            loop.close()
        if started:
            ray.shutdown()
        if old is not None:
            signal.signal(signal.SIGTERM, old)


def report_plots(run_dir) -> dict:
    """{"report/NAME": png} of `duel report RUN_DIR` (written to RUN_DIR/report) for W&B; {}
    when the run has nothing to plot (say why, the run itself is done)."""
    import duel.report as R

    try:
        R.report([run_dir], Path(run_dir) / "report")
    except (ValueError, FileNotFoundError, OSError) as e:
        say(f"no report plot for W&B: {e}")
        return {}
    return {f"report/{p.stem}": p for p in sorted((Path(run_dir) / "report").glob("*.png"))}


def say(text: str) -> None:
    """A start-up message for the person who ran the command (stderr, now)."""
    print(text, file=sys.stderr, flush=True)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _interrupt_on_sigterm():
    """SIGTERM -> KeyboardInterrupt in this (main) thread; -> the previous handler (None when
    this is not the main thread)."""
    try:
        return signal.signal(signal.SIGTERM, _raise_interrupt)
    except ValueError:
        return None


class Loop:
    def __init__(self, inputs: RunInputs, *, placement=None, hooks=None, pipeline: bool = True):
        self.inp = inputs
        cfg = self.cfg = inputs.cfg
        self.hooks = hooks or {}
        # the learner's update and the next generation sent together (one learner process)
        self.pipeline = bool(pipeline) and cfg.learner.processes == 1
        self.layout = Layout(role_specs(cfg, placement), strategy=cfg.resources.placement)
        run_dir = str(inputs.run_dir)
        # learner.processes JAX processes (one jax.distributed group); calls go to every rank
        self.learners = LearnerGroup(cfg, inputs.model_dir, run_dir,
                                     [self.layout.options("learner", i) for i in range(cfg.learner.processes)],
                                     checksums=bool(self.hooks.get("checksums")))
        self.learner = self.learners.rank0  # rank 0 alone: ledger lookups (and tests' probes)
        spec = GeneratorSpec.from_config(cfg)
        self.generators = [Generator.options(**self.layout.options("generator", i)).remote(inputs.model_dir, spec)
                           for i in range(cfg.resources.generators)]
        oracle_spec = OracleSpec.from_config(cfg)
        self.oracles = [OracleActor.options(**self.layout.options("oracle", i),
                                            max_concurrency=cfg.resources.oracle_concurrency)
                        .remote(oracle_spec) for i in range(cfg.resources.oracle_actors)]
        most = max([cfg.prompts_per_step, *cfg.prompts_per_step_from.values()])  # prompts in a step
        self.pool = OraclePool(self.oracles, max_retries=cfg.oracle.max_retries,
                               max_concurrency=cfg.resources.oracle_concurrency * len(self.oracles),
                               chunk_size=max(1, -(-most // len(self.oracles))),
                               name=oracle_spec.name)
        self.gen_pids = [i["pid"] for i in ray.get([g.info.remote() for g in self.generators])]
        self.gen_restarted: dict[int, int] = {}  # generator -> learner version when its restart was seen
        self.sent = [-1] * len(self.generators)  # version whose weights each generator was sent
        self.stream = PromptStream(len(inputs.prompt_rows), cfg.seed)
        self.counters = RunCounters()  # the learner's latest answer (it owns them)
        self.resumed = False  # a checkpoint or ledger entries were found (labels may be reused)
        self.refs: dict[int, object] = {}  # version -> published ObjectRef (kept while in use)
        self.evals: list[dict] = []
        self.saved_step: int | None = None  # the step of the checkpoint on disk for this state
        self.metrics = None  # duel.metrics.MetricsWriter, from `run`
        self.progress = None  # duel.metrics.Progress, from `run`
        self._stop_signal = None

    @property
    def version(self) -> int:
        """The weights version the learner published last."""
        return self.counters.version

    # -- weights -------------------------------------------------------------------------------

    def publish(self, ref, version: int | None = None) -> None:
        """Make the learner's published object of `version` (default: the current one) the one
        generators use.

        The ObjectRef travels with each generator's next `step` call (one round trip, no
        barrier); the generator loads it and checks the version before sampling. It may be the
        pending return of the learner's update (`pipeline`): Ray then sends the call on once
        the update has returned."""
        self.refs[self.version if version is None else version] = ref

    def _weights_for(self, i: int, version: int):
        """The ObjectRef generator i still needs for `version`, or None when it holds it."""
        if self.sent[i] == version:
            return None
        self.sent[i] = version
        return self.refs.get(version)  # None after a skipped publish: the generator refuses

    # -- one step's pieces ---------------------------------------------------------------------

    def _submit(self, step: int, version: int | None = None) -> Job:
        """Send step `step`'s generation, sampled with weights `version` (default: the current)."""
        version = self.version if version is None else version
        index, rows = self.stream.take(prompts_at(self.cfg, step))
        batch = self.inp.prompt_batch(rows, step=step, index=index)
        shards = shard_bounds(len(batch), len(self.generators))
        futs = [self.generators[i].step.remote(batch.slice(lo, hi), version, step,
                                               self._weights_for(i, version))
                for i, (lo, hi) in enumerate(shards)]
        job = Job(step=step, batch=batch, shards=shards, futs=futs, version=version,
                  t0=time.perf_counter())
        if "after_submit" in self.hooks:
            self.hooks["after_submit"](self, job)
        return job

    def _gather(self, job: Job) -> list:
        """The generators' PairBatches. A shard whose actor died (Ray restarts it empty) is
        retried after reloading the job's weights: same key, same result. A generator that
        holds another version for any other reason is an error (invariant 4)."""
        out = []
        for i, ((lo, hi), fut) in enumerate(zip(job.shards, job.futs)):
            g = self.generators[i]
            for attempt in range(4):
                try:
                    out.append(ray.get(fut))
                    break
                except (ray.exceptions.RayActorError, StaleWeights) as e:
                    pid = self._generator_pid(g)
                    if pid != self.gen_pids[i]:  # Ray restarted it: jobs sent so far were lost
                        self.gen_pids[i] = pid
                        self.gen_restarted[i] = self.version
                        self.sent[i] = -1
                    if attempt == 3 or job.version > self.gen_restarted.get(i, -1):
                        raise
                    self.warn(f"generator {i} restarted ({type(e).__name__}); "
                              f"retrying step {job.step}")
                    fut = g.step.remote(job.batch.slice(lo, hi), job.version, job.step,
                                        self._weights_for(i, job.version))
        return out

    @staticmethod
    def _generator_pid(g, timeout_s: float = 300.0) -> int:
        """The pid of generator `g`, waiting while Ray restarts it (ActorUnavailableError)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return ray.get(g.info.remote())["pid"]
            except ray.exceptions.ActorUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def _label(self, pb, step: int):
        stored = {}
        ids = [pid for pid, s in zip(pb.pair_ids, pb.synthetic) if not s]
        if self.resumed and ids:
            stored = ray.get(self.learner.lookup.remote(ids))
        budget_left = None if self.cfg.budget is None else self.cfg.budget - self.counters.queries
        return label_pairs(pb, step, seed=self.cfg.seed, oracle=self.pool, stored=stored,
                           budget_left=budget_left, label_mode=self.cfg.oracle.label_mode,
                           flip=self.cfg.oracle.flip)

    # -- the run -------------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        return self.cfg.max_staleness if self.cfg.mode == "async" else 0

    def _restore(self) -> int:
        meta = self.learners.call("restore")
        # a run stopped before its first checkpoint restarts from step 0 but keeps its paid labels
        ledger = ray.get(self.learner.ledger_count.remote())
        self.resumed = meta is not None or ledger > 0
        if meta is None:
            if ledger:
                self.warn(f"no checkpoint yet: restarting from step 0; the ledger holds {ledger} "
                          "labels already paid, reused as the steps come to them (not asked again)")
            return 0
        for msg in meta.get("refused", []):
            self.warn(msg)
        c = meta["counters"]
        self.counters = RunCounters.from_dict(c)  # as the learner restored them
        self.saved_step = self.counters.step
        after = ledger - self.counters.queries
        self.warn(f"resumed from checkpoint step {c['step']} ({c['queries']} queries paid up to it"
                  + (f"; the ledger holds {ledger} labels: the {after} paid after it are reused, "
                     "not asked again)" if after > 0 else ")"))
        self.stream.position = int(c["position"])
        self.evals = list(meta.get("evals", []))
        return self.counters.step

    def warn(self, text: str):
        """An event the user must see (a fault, a refused checkpoint), progress display or not."""
        if self.progress is not None and self.progress.live is not None:
            self.progress.message(text)
        else:
            print(text, file=sys.stderr, flush=True)

    def checkpoint(self, step: int, position: int):
        """Write checkpoint `step`; a write that fails (full disk) stops the run: RunStopped.
        The learner adds the run counters to meta["counters"]; the loop keeps the position of
        the first prompt not yet learned from there."""
        meta = {"counters": {"position": position}, "config": self.inp.config_dict, "evals": self.evals}
        try:
            path = self.learners.call("save", step, meta)
        except CheckpointWriteError as e:  # the learner removed the partial checkpoint
            raise RunStopped(self._checkpoint_failed(e, step)) from None
        self.saved_step = step
        return path

    def _checkpoint_failed(self, e: CheckpointWriteError, step: int) -> str:
        """The stop message for a checkpoint the learner could not write (ENOSPC, EIO).

        The ledger holds every label paid so far (appended before each update), so resume
        restarts from the newest checkpoint on disk and reuses those labels: none is paid twice."""
        cause = getattr(e, "cause", None)  # Ray's RayTaskError(CheckpointWriteError)
        text = str(cause if isinstance(cause, CheckpointWriteError) else e).strip().splitlines()[-1]
        since = "step 0 (no checkpoint yet)" if self.saved_step is None else f"checkpoint step {self.saved_step}"
        return (f"checkpoint write failed: {text}; the ledger holds all "
                f"{self.counters.queries} labels paid. Free disk space and resume the run: it "
                f"restarts from {since} and reuses the labels in the ledger")

    def run(self) -> dict:
        from duel.metrics import MetricsWriter, Progress

        cfg = self.cfg
        start = self._restore()
        self.metrics = MetricsWriter(self.inp.run_dir, tensorboard=cfg.logging.tensorboard,
                                     resume_step=start if self.resumed else None, mirror=self._wandb())
        self.progress = Progress(cfg.steps, cfg.budget, enabled=cfg.logging.progress, start_step=start)
        self.publish(self.learners.call("publish_group")[0])
        old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            for s in old:
                signal.signal(s, self._on_signal)
        except ValueError:  # not the main thread: no signal handling
            old = {}
        try:
            with self.progress:
                step = self._steps(start)
            if self.metrics.mirror is not None:  # the run is done: its report plot to W&B
                self.metrics.mirror.log_images(report_plots(self.inp.run_dir))
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            self.metrics.close()
        return {**self.counters.as_dict(), "step": step,
                "final_eval": self.evals[-1] if self.evals else None, "run_dir": str(self.inp.run_dir)}

    def _wandb(self):
        """The W&B mirror of the metric rows (duel.tracking), or None (logging.wandb.project unset)."""
        from duel.tracking import WandbMirror, WandbSpec

        spec = WandbSpec.from_config(self.cfg)
        if spec is None:
            return None
        return WandbMirror.open(self.inp.run_dir, spec, config=self.inp.config_dict)

    def _on_signal(self, signum, frame):
        self._stop_signal = signal.Signals(signum).name

    def _budget_spent(self) -> bool:
        return self.cfg.budget is not None and self.counters.queries >= self.cfg.budget

    def _steps(self, start: int) -> int:
        """Steps start .. cfg.steps (or until the budget is spent) -> the last step done."""
        pending: deque[Job] = deque()
        next_gen = step = start
        while step < self.cfg.steps and not self._budget_spent():
            while next_gen < self.cfg.steps and next_gen <= step + self.depth:
                pending.append(self._submit(next_gen))
                next_gen += 1
            job = pending.popleft()
            gen = self._generated(job, step)
            labeled, info = self._label_or_stop(gen.pairs, job, step)
            if self.pipeline:
                answer = self._learn_submit(labeled, step)
                # the generation that will sample with the version this update makes, sent now
                # (a step the budget then turns out not to allow is dropped unasked: no query)
                while next_gen < self.cfg.steps and next_gen <= step + 1 + self.depth:
                    pending.append(self._submit(next_gen, self.version + 1))
                    next_gen += 1
                learned = self._learn_wait(answer, labeled, step)  # an error fails the calls sent with it
            else:
                learned = self._learn(labeled, step)
            step += 1
            times = self._log_step(step, gen, info, learned)
            self._after_step(step, pending[0].batch.index if pending else self.stream.position, times)
        return step

    def _generated(self, job: Job, step: int) -> Generated:
        """The job's PairBatch, joined over the generators and checked for staleness."""
        t_wall = time.perf_counter()
        parts = self._gather(job)
        t_wait = time.perf_counter() - t_wall
        pb = PairBatch.concat(parts, pad_id=self.inp.pad_id)
        if self.version - pb.version > self.depth:  # invariant 4
            raise RuntimeError(f"step {step}: sample version {pb.version} is {self.version - pb.version} "
                               f"versions old; max_staleness is {self.depth}")
        return Generated(pairs=pb, t_wall=t_wall, t_wait=t_wait)

    def _label_or_stop(self, pb: PairBatch, job: Job, step: int):
        """-> (LabeledBatch, info) of `learner.labeling.label_pairs`; an oracle outage keeps the
        answers paid so far, checkpoints and stops the run (RunStopped). The failed step is
        redone on resume; the labels paid so far are in the ledger."""
        try:
            return self._label(pb, step)
        except OracleUnavailable as e:
            kept = self._keep_answers(e, step)
            try:
                if self.saved_step != step:  # (a checkpoint of exactly this state is on disk)
                    self.checkpoint(step, job.batch.index)
            except RunStopped as c:
                raise RunStopped(f"oracle unavailable: {e}{kept}; then {c}") from e
            saved = (f"checkpoint of step {step} saved ({self.counters.queries} queries "
                     f"paid, all in the ledger){kept}")
            kind = self.cfg.oracle.kind
            if kind in ("task", "rule") and isinstance(e.error, _NOT_AN_OUTAGE):
                raise RunStopped(
                    f"oracle failed: {e}; {saved}. Not an outage: the oracle (oracle.kind "
                    f"{kind!r}) is a function of the prompt and the response, and "
                    f"{type(e.error).__name__} means it cannot grade these pairs (a prompt the "
                    "task does not expect, or a bug in the reward); a resume asks the same pairs "
                    "and fails the same way until the prompts or the reward are fixed",
                    resumable=False) from e
            raise RunStopped(f"oracle unavailable: {e}; {saved}") from e

    def _learned(self, fetch, labeled, step: int) -> LearnerStep:
        """`fetch()`'s LearnerStep; a ledger failure (full disk: the learner wrote nothing and
        learned nothing) stops the run with what it had."""
        try:
            return fetch()
        except LedgerError as e:
            raise RunStopped(self._ledger_failed(e, step, labeled.queries)) from None

    def _learn(self, labeled, step: int) -> LearnerStep:
        """The learner's update and publish; its counters become the loop's."""
        learned = self._learned(lambda: self.learners.call("update_and_publish", labeled, step),
                                labeled, step)
        self.counters = learned.counters
        self.publish(learned.refs[0])
        self._drop_old_refs()
        return learned

    def _learn_submit(self, labeled, step: int):
        """`pipeline`: send the learner's update; its weights return, not there yet, is
        published as version + 1 at once -> the ObjectRef of its LearnerStep (`_learn_wait`)."""
        weights, answer = self.learners.submit_update(labeled, step)
        self.publish(weights, self.version + 1)  # each update makes exactly one version
        return answer

    def _learn_wait(self, answer, labeled, step: int) -> LearnerStep:
        """The LearnerStep of `_learn_submit`; its counters become the loop's."""
        learned = self._learned(lambda: ray.get(answer), labeled, step)
        if learned.counters.version != self.version + 1:
            raise RuntimeError(f"learner answered version {learned.counters.version} for step "
                               f"{step + 1}, expected {self.version + 1}")
        self.counters = learned.counters
        self._drop_old_refs()
        return learned

    def _drop_old_refs(self) -> None:
        for v in [v for v in self.refs if v < self.version - self.depth]:
            del self.refs[v]

    def _log_step(self, step: int, gen: Generated, info: dict, learned: LearnerStep) -> dict:
        """The train row of metrics.jsonl (docs/run_dir.md) -> the step's times for the progress display."""
        pb, metrics = gen.pairs, learned.metrics
        times = {"generate": pb.diagnostics.get("time_generate", 0.0),
                 "select": pb.diagnostics.get("time_select", 0.0),
                 "oracle": info["time_oracle"], "learn": metrics.get("time_learn", 0.0),
                 "publish": metrics.get("time_put", 0.0) + pb.diagnostics.get("time_load", 0.0)}
        wall = time.perf_counter() - gen.t_wall
        c = self.counters
        row = {"queries": c.queries, "synthetic": c.synthetic, "version": c.version,
               "sample_version": pb.version, "staleness": c.version - 1 - pb.version,
               **{f"time_{k}": v for k, v in times.items()}, "time_wait": gen.t_wait, "time_step": wall,
               **{k: v for k, v in metrics.items() if not k.startswith("time_")},
               **{k: v for k, v in pb.diagnostics.items() if not k.startswith("time_")}}
        self.metrics.log("train", step, **row)
        return times

    def _after_step(self, step: int, position: int, times: dict) -> None:
        """Evaluation, progress, checkpoint, test hooks and a stop signal, after step `step`.
        position: the first prompt not yet learned from (what a checkpoint stores)."""
        cfg = self.cfg
        last = step >= cfg.steps or self._budget_spent()
        if (cfg.eval.every and step % cfg.eval.every == 0) or last:
            self._evaluate(step)
        self.progress.update(step, self.counters.queries, self.counters.synthetic,
                             win_rate=self.evals[-1]["win_rate"] if self.evals else None,
                             win_rate_step=self.evals[-1]["step"] if self.evals else None, times=times)
        if (cfg.checkpoint.every and step % cfg.checkpoint.every == 0) or last:
            self.checkpoint(step, position)
        if "after_step" in self.hooks:
            self.hooks["after_step"](self, step)
        if self._stop_signal and not last:
            try:
                if self.saved_step != step:
                    self.checkpoint(step, position)
            except RunStopped as c:
                raise RunStopped(f"{self._stop_signal} received; then {c}") from None
            raise RunStopped(f"{self._stop_signal} received; checkpointed step {step}")

    def _keep_answers(self, e: OracleUnavailable, step: int) -> str:
        """Put the answers the oracle gave in `step` before it gave up in the ledger (paid: the
        resumed run reuses them) -> what to add to the stop message."""
        labeled = getattr(e, "labeled", None)
        n = 0 if labeled is None else len(labeled.prob_a)
        if n == 0:
            return ""
        try:
            self.learners.call("record", labeled, step)
        except LedgerError as le:
            cause = getattr(le, "cause", None)
            text = str(cause if isinstance(cause, LedgerError) else le).strip().splitlines()[-1]
            return (f"; the {n} answers of step {step + 1} received before it gave up could not "
                    f"be written ({text}) and will be asked again")
        return f"; the {n} answers of step {step + 1} received before it gave up are in the ledger too"

    def _ledger_failed(self, e: LedgerError, step: int, paid: int) -> str:
        """The stop message for a ledger write that failed in the learner (ENOSPC, EIO).

        The ledger rolled the batch back, so the learner's update never ran: its state is still
        that of `step`. No checkpoint is written (the disk is full; the newest one on disk stays
        as it is); resume restarts from that checkpoint, reuses the labels the ledger holds and
        asks the oracle again for this step's answers, which never reached the ledger."""
        cause = getattr(e, "cause", None)  # Ray's RayTaskError(LedgerError): the actor's own error
        text = str(cause if isinstance(cause, LedgerError) else e).strip().splitlines()[-1]
        since = "step 0 (no checkpoint yet)" if self.saved_step is None else f"checkpoint step {self.saved_step}"
        return (f"ledger write failed at step {step + 1}: {text}; the {paid} oracle answers of this "
                f"step were not used and will be asked again; no checkpoint written, resume "
                f"restarts from {since} and reuses the labels already in the ledger")

    def _evaluate(self, step: int):
        ev = self.learners.call("evaluate", step)
        row = {"queries": self.counters.queries, **ev}
        self.metrics.log("eval", step, **row)
        self.evals.append({"step": step, **row})
        self.progress.message(f"eval step {step}: win rate {ev['win_rate']:.3f} "
                              f"[{ev['win_rate_lo']:.3f}, {ev['win_rate_hi']:.3f}] n={ev['n']}"
                              + (f"; expected win rate {ev['expected_win_rate']:.3f} "
                                 f"[{ev['expected_win_rate_lo']:.3f}, {ev['expected_win_rate_hi']:.3f}]"
                                 if "expected_win_rate" in ev else ""))

    def close(self):
        for a in [*self.learners.actors, *self.generators, *self.oracles]:
            try:
                ray.kill(a)
            except ValueError:  # not an actor handle any more
                continue
        self.layout.close()

"""Generator actor: the policy server of one device.

Holds the policy (inference copy, compute dtype), the frozen reference/encoder (reference
log-probs and features phi(x, y) from one frozen `score` pass; with `erm.encoder` set, phi comes
from that frozen model instead) and a copy of the ERM. The
learner publishes weights once per version: a `duel.transport.Packed` (the policy in bucketed
host buffers of the publish dtype, plus extras {"erm", "checksum"}) put in the object store by
learner/transport_ray.py. `load(weights, version)` receives that Packed (Ray resolves the
ObjectRef; the buckets are views of the object store) and installs it through the transport
(one host-to-device copy per bucket on an accelerator, no copy on CPU);
`step(prompts, version, step)` refuses to sample with any version other than the one it
holds (invariant 4). The loop sends the object with the first `step` call of a new version
(`step(prompts, version, step, weights)`): one round trip, no barrier. The work itself is
`duel.propose.propose_pairs`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ray

if TYPE_CHECKING:
    from duel.sampling import SamplingParams


def _sampling_params(**fields):
    """A duel.sampling.SamplingParams (imported here: this module loads without JAX)."""
    from duel.sampling import SamplingParams

    return SamplingParams(**fields)


class StaleWeights(RuntimeError):
    """A generator was asked to sample with a version it does not hold."""


@dataclasses.dataclass(frozen=True)
class GeneratorSpec:
    """What a generator needs of the run config, typed and frozen (built once by the loop)."""

    seed: int
    candidates: int  # M responses per prompt
    strategy: str  # duel.explore strategy
    explore_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    gamma: float = 0.0  # mixed preference learning: fraction of prompts labelled by the ERM
    burn_in: int = 0  # ... from this step on
    min_confidence: float = 0.5  # ... where the ensemble is this sure (mixed.min_confidence)
    unconfident: str = "ask"  # ... else "ask" the oracle or "drop" the prompt (mixed.unconfident)
    synthetic_by: str = "member"  # ... best vs worst under one member or the members' mean (mixed.pair)
    beta: float = 0.1  # loss beta (apl's implicit reward margin)
    # duel.sampling.SamplingParams of the `sampling:` section; its stop_token_ids () = the model's
    # eos tokens, pad_token_id None = the model's pad id, or 0 (the generator fills both in)
    sampling: SamplingParams = dataclasses.field(default_factory=_sampling_params)
    compute_dtype: str = "float32"
    encoder: str | None = None  # erm.encoder: HF directory of the features' frozen model; None = reference
    lora: Any = None  # duel.models.lora.LoraSpec: the learner publishes only the adapters; None = off
    gold_task: str | None = None  # erm.features gold (a diagnostic): phi = this task's gold reward
    token_probs: bool = False  # erm.features hidden_probs: phi also holds per-token probabilities
    words_weight: float | None = None  # erm.features hidden_probs_words: ... and a bag of words at this weight

    @classmethod
    def from_config(cls, cfg, **changes) -> "GeneratorSpec":
        """The generator spec of a run config (duel.config.Config); `changes` override fields."""
        from duel.models.lora import from_config as lora_spec

        s = cfg.sampling
        sampling = _sampling_params(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k,
                                    max_new_tokens=s.max_new_tokens)
        spec = cls(seed=cfg.seed, candidates=cfg.candidates, strategy=cfg.explore.strategy,
                   explore_options=dict(cfg.explore.options), gamma=cfg.mixed.gamma,
                   burn_in=cfg.mixed.burn_in, min_confidence=cfg.mixed.min_confidence,
                   unconfident=cfg.mixed.unconfident, synthetic_by=cfg.mixed.pair,
                   beta=cfg.loss.beta, sampling=sampling,
                   compute_dtype=cfg.policy.compute_dtype,
                   encoder=str(Path(cfg.erm.encoder).expanduser()) if cfg.erm.encoder else None,
                   lora=lora_spec(cfg.policy),
                   gold_task=cfg.task if cfg.erm.features == "gold" else None,
                   token_probs=cfg.erm.features in ("hidden_probs", "hidden_probs_words"),
                   words_weight=cfg.erm.words_weight if cfg.erm.features == "hidden_probs_words" else None)
        return dataclasses.replace(spec, **changes)

    def mixed_active(self, step: int) -> bool:
        return step >= self.burn_in and self.gamma > 0


class GeneratorCore:
    """The actor's state and methods, usable without Ray (tests, benchmarks)."""

    def __init__(self, model_dir: str, spec: GeneratorSpec):
        import jax.numpy as jnp
        from flax import nnx

        from duel.models import load_pretrained
        from duel.transport import LocalTransport

        if not isinstance(spec, GeneratorSpec):
            raise TypeError(f"GeneratorCore: spec must be a GeneratorSpec, got {type(spec).__name__}")
        dtype = getattr(jnp, spec.compute_dtype)
        self.policy, self.model_config = load_pretrained(model_dir, dtype=dtype)
        if spec.lora is None:
            self.encoder, _ = load_pretrained(model_dir, dtype=dtype)  # frozen: never reloaded
        else:  # LoRA: one base; the reference/encoder is that base with the adapters off
            from duel.models.lora import attach, base_model

            attach(self.policy, spec.lora, seed=spec.seed)
            self.encoder = base_model(self.policy)  # shares the frozen arrays: no second copy
        # erm.encoder: the features phi come from this frozen model (same tokenizer); None = encoder
        self.feature_encoder = load_pretrained(spec.encoder, dtype=dtype)[0] if spec.encoder else None
        # erm.features hidden_probs_words: the bag of words' scale, a constant of the frozen table
        self.words_sd = None
        if spec.words_weight is not None:
            from duel.logprobs import embedding_sd

            self.words_sd = embedding_sd(self.encoder.embed[...])
        self.gold_features = None
        if spec.gold_task:  # erm.features gold: phi = the gold reward the task's oracle sees
            from duel.tasks import get_task

            self.gold_features = gold_feature_fn(get_task(spec.gold_task))
        self.tokenizer = _tokenizer(model_dir)
        self.spec = spec
        stops = tuple(spec.sampling.stop_token_ids or self.model_config.eos_token_id or ())
        pad = spec.sampling.pad_token_id
        pad = self.model_config.pad_token_id if pad is None else pad
        self.sampling = dataclasses.replace(spec.sampling, stop_token_ids=stops,
                                            pad_token_id=int(pad if pad is not None else 0))
        self._params_template = nnx.state(self.policy, nnx.Param)
        self.dtype = dtype
        # Ray resolves the learner's ObjectRef into the Packed before `load` runs, so receiving
        # is the in-process unpack; a collective (NCCL) transport would replace this object
        self.transport = LocalTransport()
        self.erm_params = None
        self.version = -1
        self.checksum = ""
        self._checked_spec = None  # the last PackSpec that passed check_layout (same every version)

    def load(self, weights, version: int) -> str:
        """Install a published duel.transport.Packed of `version`; returns its checksum.

        With a checksum published (the tests' `checksums` hook) the installed weights are
        digested and must match it."""
        from flax import nnx

        from duel.digest import checksum, flat_weights
        from duel.transport import check_layout

        if int(weights.version) != int(version):
            raise StaleWeights(f"published object holds version {weights.version}, expected {version}")
        if weights.spec != self._checked_spec:  # the layout is the same every version: check once
            check_layout(weights.spec, self._params_template)
            self._checked_spec = weights.spec
        _, params = self.transport.get(weights, dtype=self.dtype)
        nnx.update(self.policy, params)
        self.erm_params = weights.extras["erm"]
        self.version = int(version)
        self.checksum = weights.extras.get("checksum", "")
        if self.checksum:
            got = checksum(flat_weights(nnx.state(self.policy, nnx.Param)))
            if got != self.checksum:
                raise RuntimeError(f"generator installed weights of version {version} with checksum "
                                   f"{got}, but the learner published {self.checksum}")
        return self.checksum

    def step(self, prompts, version: int, step: int, weights=None):
        """PairBatch for `prompts` sampled with weights `version`. `weights`: the published
        object of that version when this generator does not hold it yet (loaded first)."""
        import time

        from duel.propose import propose_pairs

        t0 = time.perf_counter()
        if weights is not None:
            self.load(weights, version)
        t_load = time.perf_counter() - t0
        if version != self.version:
            raise StaleWeights(f"generator holds weights version {self.version} but was asked to "
                               f"sample with version {version} (a publish was skipped or reordered)")
        s = self.spec
        key = generate_key(s.seed, step, prompts.index)
        pb = propose_pairs(
            self.policy, self.encoder, self.erm_params, prompts, key, self.sampling,
            candidates=s.candidates, strategy=s.strategy, version=self.version,
            tokenizer=self.tokenizer, explore_options=s.explore_options,
            gamma=s.gamma, mixed_active=s.mixed_active(step), min_confidence=s.min_confidence,
            unconfident=s.unconfident, synthetic_by=s.synthetic_by, beta=s.beta,
            feature_encoder=self.feature_encoder, feature_fn=self.gold_features,
            token_probs=self.spec.token_probs, words_weight=self.spec.words_weight, words_sd=self.words_sd)
        pb.diagnostics["time_load"] = t_load
        return pb

    def info(self) -> dict:
        return {"version": self.version, "checksum": self.checksum, "pid": os.getpid(),
                "node_id": _node_id()}


def gold_feature_fn(task):
    """`erm.features: gold`: phi(x, y) = [gold reward of y], the number the task's oracle reads
    (prompt text as shown to the oracle, decoded response): [P, M, 1] float32."""
    import numpy as np

    def phi(prompts: list[str], texts: list[list[str]]) -> np.ndarray:
        return np.asarray([[[task.gold_reward(p, y)] for y in ys] for p, ys in zip(prompts, texts)], np.float32)

    return phi


def generate_key(seed: int, step: int, index: int):
    """`step_key(seed, step, KEY_GENERATE, index)` in one jitted call (the same bits: fold_in is
    deterministic). Eager, the key costs four dispatches (~1 ms on CPU) on every step."""
    from duel.keys import KEY_GENERATE, step_key

    if not all(0 <= int(v) < 2**31 for v in (seed, step, index)):  # beyond int32: the eager path
        return step_key(seed, step, KEY_GENERATE, index)
    return _generate_key(seed, step, index)


@functools.cache
def _jitted_generate_key():
    import jax

    from duel.keys import KEY_GENERATE, step_key

    return jax.jit(lambda seed, step, index: step_key(seed, step, KEY_GENERATE, index))


def _generate_key(seed: int, step: int, index: int):
    import numpy as np

    return _jitted_generate_key()(np.int32(seed), np.int32(step), np.int32(index))


def _node_id() -> str | None:
    if not ray.is_initialized():  # used outside Ray (tests, benchmarks)
        return None
    return ray.get_runtime_context().get_node_id()


def _tokenizer(model_dir: str):
    """The model directory's tokenizer, read without transformers (no torch at runtime)."""
    from duel.tasks.tokenizer import load_tokenizer

    try:
        return load_tokenizer(model_dir)
    except FileNotFoundError:  # a directory without tokenizer.json: texts are token ids
        return None


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0)
class Generator(GeneratorCore):
    """Ray actor: one per device; `step` with the published weights of each new version."""

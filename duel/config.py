"""Typed run configuration: nested dataclasses, YAML presets and `--set key=value` overrides.

    cfg = load_config("my.yaml", ["explore.strategy=bai_ts", "budget=2000"])
    save_config(cfg, run_dir / "config.yaml")          # the resolved config (no secrets)
    cfg == load_config(run_dir / "config.yaml")        # round trip

`load_config` reads a YAML file (a preset name such as "demo" is resolved to
`launch/configs/NAME.yaml` by `launch.presets.load_config`, which then calls this one). Every key is
checked against the dataclasses below by pydantic (a `TypeAdapter` over them: leaf types are
strict, ranges are `Field(ge=..., gt=..., le=...)` constraints in the annotations): an unknown or
mistyped key, a wrong type, an invalid choice or a value out of range fails with a `ConfigError`
naming the source (file or `--set`), the dotted key, what was expected, and the closest valid key
or choice. The dataclasses stay plain `dataclasses` (built, compared and written as before).
Field names are stable; readers of a run's config.yaml (e.g. the report) rely on `seed`, `task`,
`budget`, `explore.strategy`.

A file may hold per-strategy settings (a recipe that runs each method as its paper does, so one
sweep file runs them all): a top-level `per_strategy:` mapping from a strategy name to settings
laid over the file's own when the run's `explore.strategy` (after `--set`) is that strategy.
Precedence: the file < its `per_strategy` block < `--set`. The block is resolved away: a run's
saved config holds the settings it ran with, not the blocks.

    explore: {strategy: ee_ts}
    replay: {updates: 10}           # passive, apl, xpo
    per_strategy:
      ee_ts: {replay: {updates: 2}, mixed: {gamma: 0.9375}}

Secrets never live in a config: oracle credentials are given as environment variable NAMES
(`oracle.options.api_key_env: OPENAI_API_KEY`); a secret-looking key holding a value is refused.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import functools
import re
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BeforeValidator, ConfigDict, Field, Strict, TypeAdapter, ValidationError, with_config

Strategy = Literal["passive", "ee_ts", "bai_ts", "uncertainty", "apl", "xpo", "bon_won"]
LossKind = Literal["dpo", "rdpo", "ipo", "slic", "simpo", "xpo"]
# the learner's train step computes in float32 or bfloat16 (float16 would need loss scaling)
DType = Literal["float32", "bfloat16"]


class ConfigError(ValueError):
    """A config file, preset or override that does not match the schema."""


def _yaml_int(value: Any) -> Any:
    """An integer written as "1e3" (a string to PyYAML) or 1.0e3 (a float) is that integer."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _yaml_float(value: Any) -> Any:
    """PyYAML reads "1e-5" as a string (YAML 1.1); an integer is that number."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def _tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _empty_section(value: Any) -> Any:
    return {} if value is None else value  # an empty section ("policy:") keeps its defaults


# Leaf types, validated by pydantic (`_schema`): strict (true/false is not a number, a number is not
# a string) apart from the two readings above. A range is a pydantic constraint on the field:
# `Annotated[Int, Field(ge=0)]`.
Int = Annotated[int, Strict(), BeforeValidator(_yaml_int)]
Float = Annotated[float, Strict(), BeforeValidator(_yaml_float)]
Str = Annotated[str, Strict()]
Bool = Annotated[bool, Strict()]
T = TypeVar("T")
Seq = Annotated[tuple[T, ...], Strict(), BeforeValidator(_tuple)]  # a YAML list
Section = Annotated[T, BeforeValidator(_empty_section)]


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The `data:` section: prompts (and eval references) read from files, a task made of data.

    `train` / `eval` name a .jsonl/.json/.parquet file or a directory written by
    `datasets.Dataset.save_to_disk` / `DatasetDict.save_to_disk` (its `train_split` /
    `eval_split`). With `eval` unset, a DatasetDict `train` directory gives the eval rows from
    its `eval_split` (as oat's --prompt_data with --eval_split). Rows are checked before Ray
    starts (duel.data_source)."""

    train: Str | None = None  # training prompts; None = the task's
    eval: Str | None = None  # eval prompts with references; None = train's eval_split, else the task's
    train_split: Str = "train"  # the split of a DatasetDict directory
    eval_split: Str = "test"
    prompt_key: Str = "prompt"  # a string, or a list of {"role", "content"} messages
    reference_key: Str = "reference"  # the reference response (eval rows; optional in train rows)
    id_key: Str = "id"  # optional column; ids default to "<name>-<row>"
    max_prompt_len: Annotated[Int, Field(ge=2)] = 1024  # tokens of a prompt after the chat template
    truncation: Literal["left", "drop"] = "left"  # longer prompts: keep the end, or drop the row


@dataclasses.dataclass(frozen=True)
class LoraConfig:
    """LoRA adapters (duel.models.lora): only they are trained, held in AdamW and published."""

    rank: Annotated[Int, Field(ge=0)] = 0  # 0 = off: the whole policy is trained
    alpha: Annotated[Float, Field(gt=0.0)] = 16.0  # the update is scaled by alpha / rank
    dropout: Annotated[Float, Field(ge=0.0, le=0.9)] = 0.0  # on the adapters' input, in the train step only
    targets: Seq[Str] = ("q", "k", "v", "o", "gate", "up", "down")  # projection names


@dataclasses.dataclass(frozen=True)
class PolicyConfig:
    path: Str | None = None  # Hugging Face directory; None = the task's starting policy
    # generators' weights and every forward pass (the learner's master weights are float32)
    compute_dtype: DType = "float32"
    lora: Section[LoraConfig] = dataclasses.field(default_factory=LoraConfig)


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    temperature: Annotated[Float, Field(gt=0.0)] = 1.0
    top_p: Annotated[Float, Field(gt=0.0, le=1.0)] = 1.0
    top_k: Annotated[Int, Field(ge=0)] = 0  # 0 = off
    max_new_tokens: Annotated[Int, Field(ge=1)] = 64


@dataclasses.dataclass(frozen=True)
class ExploreConfig:
    strategy: Strategy = "ee_ts"
    # passed to duel.explore.select_pairs(strategy, rewards, key, **options)
    options: dict[Any, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class MixedConfig:
    # fraction of prompts labelled by the ERM; < 1: at 1 no query is ever paid, and the ERM, which
    # learns from paid labels only, never learns anything new
    gamma: Annotated[Float, Field(ge=0.0, lt=1.0)] = 0.0
    burn_in: Annotated[Int, Field(ge=0)] = 0  # steps before ERM labels are used
    # an ERM label is used only where the ensemble is this sure: max(P, 1 - P) >= min_confidence
    # with P = mean_k sigma(r_k(a) - r_k(b)); 0.5 = every one (SEA)
    min_confidence: Annotated[Float, Field(ge=0.5, lt=1.0)] = 0.5
    # a prompt whose ERM label is less sure: "ask" the oracle about the strategy's pair instead
    # (a paid query), or "drop" it from the step (no label, no query)
    unconfident: Literal["ask", "drop"] = "ask"
    # which pair the ERM labels: "member", the best and worst candidate under one sampled member
    # (Thompson-like, the default); "mean", the best and worst under the members' mean reward (the
    # ensemble's own estimate: exploration is the paid pair's job)
    pair: Literal["member", "mean"] = "member"


@dataclasses.dataclass(frozen=True)
class ERMSection:
    """The `erm:` section; the learner maps it onto duel.ensemble.ERMConfig (learner/configs.py)."""

    num_members: Annotated[Int, Field(ge=1)] = 20
    hidden: Seq[Int] = (128, 128)
    lr: Annotated[Float, Field(gt=0.0)] = 1e-3
    anchor_lambda: Annotated[Float, Field(ge=0.0)] = 1.0  # weight of the anchored prior (per query)
    steps_per_update: Annotated[Int, Field(ge=1)] = 5  # Adam steps per ERM update
    buffer_size: Annotated[Int, Field(ge=1)] = 100_000  # replay of labelled pairs
    bootstrap: Bool = True  # per-member bootstrap masks
    # HF directory whose frozen hidden states are the features phi(x, y) (same tokenizer as the
    # policy); None = the frozen starting policy. Reference log-probs always come from the latter.
    encoder: Str | None = None
    # "hidden": phi from the frozen model above. "gold" (a diagnostic, oracle.kind task only):
    # phi = the task's gold reward of the response, one number: an ERM that can know what the
    # oracle knows, the ceiling of what better features could give the exploration.
    # "hidden_probs": the hidden phi and, per response position, the frozen starting policy's
    # probability of the token there (duel.logprobs.token_prob_features; H + max_new_tokens wide)
    # "hidden_probs_words": those and a bag of words with its counts, the sum of the response
    # tokens' input embeddings of the starting policy over the embedding table's per-unit sd,
    # times words_weight (duel.logprobs.bag_of_words; + the policy's hidden size wide)
    features: Literal["hidden", "gold", "hidden_probs", "hidden_probs_words"] = "hidden"
    words_weight: Annotated[Float, Field(ge=0.0)] = 0.5


@dataclasses.dataclass(frozen=True)
class LossConfig:
    kind: LossKind = "dpo"
    beta: Annotated[Float, Field(gt=0.0)] = 0.1
    label_smoothing: Annotated[Float, Field(ge=0.0, le=0.5)] = 0.0  # cDPO / rDPO flip rate
    simpo_gamma: Float = 0.5  # SimPO target margin
    xpo_alpha: Annotated[Float, Field(ge=0.0)] = 1e-5  # XPO exploration bonus weight
    nll_weight: Annotated[Float, Field(ge=0.0)] = 0.0  # + weight x per-token NLL of the chosen response (RPO)


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    lr: Annotated[Float, Field(gt=0.0)] = 5e-7
    warmup_steps: Annotated[Int, Field(ge=0)] = 0
    weight_decay: Annotated[Float, Field(ge=0.0)] = 0.0
    clip_norm: Annotated[Float, Field(ge=0.0)] = 1.0  # 0 = no clipping
    # after warmup the learning rate decays (cosine, over `steps`) to lr * min_lr_ratio; 1 = constant.
    # Both count loop steps, replayed updates included (learner/configs.py); a budget that ends
    # the run first does not shorten the decay: set `steps` to the loop steps the budget takes
    min_lr_ratio: Annotated[Float, Field(ge=0.0, le=1.0)] = 1.0
    micro_batches: Annotated[Int, Field(ge=1)] = 1
    remat: Bool = False  # recompute each layer in the backward pass: less memory, ~1/3 more compute


@dataclasses.dataclass(frozen=True)
class ReplayConfig:
    """Label replay (duel.replay): extra policy updates per step on the run's paid labels."""

    updates: Annotated[Int, Field(ge=0)] = 0  # extra updates per step, each on `batch` replayed pairs; 0 = off
    batch: Annotated[Int, Field(ge=0)] = 0  # pairs per replayed update (drawn with replacement); 0 = prompts_per_step
    capacity: Annotated[Int, Field(ge=1)] = 1024  # the newest oracle-labelled pairs kept for replay


@dataclasses.dataclass(frozen=True)
class ReferenceConfig:
    schedule: Literal["fixed", "behavior", "ema", "stepwise"] = "fixed"
    tau: Annotated[Float, Field(ge=0.0, le=1.0)] = 0.01  # ema: ref <- (1 - tau) ref + tau policy
    every: Annotated[Int, Field(ge=0)] = 0  # stepwise: copy the policy every N steps


@dataclasses.dataclass(frozen=True)
class OracleConfig:
    kind: Str = "task"  # see duel.oracles.make_oracle; "task" = the task's gold reward
    # free-form, for make_oracle; secrets only as env var NAMES (api_key_env: OPENAI_API_KEY)
    options: dict[Any, Any] = dataclasses.field(default_factory=dict)
    label_mode: Literal["bt", "threshold"] = "bt"  # how a label is sampled from P(a > b)
    flip: Annotated[Float, Field(ge=0.0, le=1.0)] = 0.0  # label noise (simulated oracles)
    # the one retry budget: a failed oracle call (an HTTP oracle's failed request) is tried again
    # up to this many times in a row, then the run checkpoints and stops
    max_retries: Annotated[Int, Field(ge=0)] = 3


@dataclasses.dataclass(frozen=True)
class ResourcesConfig:
    generators: Annotated[Int, Field(ge=1)] = 1
    generator_gpus: Annotated[Float, Field(ge=0.0)] = 0.0  # per generator
    oracle_actors: Annotated[Int, Field(ge=1)] = 1
    oracle_gpus: Annotated[Float, Field(ge=0.0)] = 0.0  # per oracle actor (a reward model's device)
    oracle_concurrency: Annotated[Int, Field(ge=1)] = 4  # in-flight requests per oracle actor
    learner_gpus: Annotated[Float, Field(ge=0.0)] = 0.0
    placement: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"


@dataclasses.dataclass(frozen=True)
class LearnerConfig:
    """How the learner's JAX program is laid out over its devices (docs/scale.md)."""

    # none: one device; dp: params replicated, pairs split over the devices; fsdp: params and
    # AdamW moments split too (duel.sharding)
    sharding: Literal["none", "dp", "fsdp"] = "none"
    # fsdp: arrays with fewer elements stay replicated. 2**16 float32 masters + AdamW moments are
    # 768 KiB: splitting them saves less than one activation buffer and adds one latency-bound
    # all-gather per use (Pythia-1B: the [16, 2048] norm scales stay whole, every matrix splits)
    min_shard_size: Annotated[Int, Field(ge=0)] = 2**16
    processes: Annotated[Int, Field(ge=1)] = 1  # JAX processes (Ray actors) of one learner; > 1: multi-host


@dataclasses.dataclass(frozen=True)
class CheckpointConfig:
    every: Annotated[Int, Field(ge=0)] = 50  # steps; 0 = only on a clean stop
    keep: Annotated[Int, Field(ge=1)] = 3


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    every: Annotated[Int, Field(ge=0)] = 50  # steps; 0 = only at the end
    num_prompts: Annotated[Int, Field(ge=1)] = 64
    greedy: Bool = True  # win_rate from greedy responses (else one sampled response per prompt)
    # sampled responses per prompt at sampling.temperature for expected_win_rate (the mean of the
    # oracle's P(policy > reference), no label sampling); 0 = off
    samples: Annotated[Int, Field(ge=0)] = 4
    # evaluate (and `duel export --average`) a Polyak average of the policy's weights instead of
    # the policy itself: a debiased exponential moving average with this decay per optimizer
    # update (replayed updates included), kept by the learner and checkpointed; training never
    # reads it; LoRA: A and B averaged apart, as reference.schedule ema. 0 = off (the policy as trained)
    ema: Annotated[Float, Field(ge=0.0, lt=1.0)] = 0.0


@dataclasses.dataclass(frozen=True)
class WandbConfig:
    """`logging.wandb`: mirror every metrics row to Weights & Biases (duel.tracking); needs the
    optional `wandb` package (pip install -e '.[wandb]'). The API key comes from the environment."""

    project: Str | None = None  # None = W&B off
    entity: Str | None = None  # team or user; None = the logged-in default
    name: Str | None = None  # the W&B run name; None = the run directory's name
    mode: Literal["online", "offline", "disabled"] = "online"  # offline: no network, `wandb sync` later


@dataclasses.dataclass(frozen=True)
class LoggingConfig:
    tensorboard: Bool = True  # RUN_DIR/tb
    progress: Bool = True  # rich live display (plain lines when stdout is not a TTY)
    wandb: Section[WandbConfig] = dataclasses.field(default_factory=WandbConfig)


@with_config(ConfigDict(extra="forbid"))  # (pydantic applies it to every section too)
@dataclasses.dataclass(frozen=True)
class Config:
    """One run. Top level: what to run and how long; sections: how each part behaves."""

    seed: Int = 0
    run_dir: Str = "runs/duel"
    steps: Annotated[Int, Field(ge=1)] = 100
    budget: Annotated[Int, Field(ge=0)] | None = None  # max oracle queries; None = no limit
    mode: Literal["sync", "async"] = "sync"
    max_staleness: Annotated[Int, Field(ge=0)] = 0  # async only; sync mode is always 0
    prompts_per_step: Annotated[Int, Field(ge=1)] = 8
    # a schedule: from loop step N (counted from 0) on, P prompts per step, e.g. {170: 32}; the
    # steps before the first key take prompts_per_step (`prompts_at`)
    prompts_per_step_from: dict[Annotated[Int, Field(ge=1)], Annotated[Int, Field(ge=1)]] = \
        dataclasses.field(default_factory=dict)
    candidates: Annotated[Int, Field(ge=2)] = 4  # M responses sampled per prompt
    # registered task name or "module:Class"; None = no task: `data:` gives prompts and references
    # and the oracle grades (a run needs a task, or data.train with data.eval or its eval split)
    task: Str | None = None
    data: Section[DataConfig] = dataclasses.field(default_factory=DataConfig)
    policy: Section[PolicyConfig] = dataclasses.field(default_factory=PolicyConfig)
    sampling: Section[SamplingConfig] = dataclasses.field(default_factory=SamplingConfig)
    explore: Section[ExploreConfig] = dataclasses.field(default_factory=ExploreConfig)
    mixed: Section[MixedConfig] = dataclasses.field(default_factory=MixedConfig)
    erm: Section[ERMSection] = dataclasses.field(default_factory=ERMSection)
    loss: Section[LossConfig] = dataclasses.field(default_factory=LossConfig)
    optim: Section[OptimConfig] = dataclasses.field(default_factory=OptimConfig)
    replay: Section[ReplayConfig] = dataclasses.field(default_factory=ReplayConfig)
    reference: Section[ReferenceConfig] = dataclasses.field(default_factory=ReferenceConfig)
    oracle: Section[OracleConfig] = dataclasses.field(default_factory=OracleConfig)
    resources: Section[ResourcesConfig] = dataclasses.field(default_factory=ResourcesConfig)
    learner: Section[LearnerConfig] = dataclasses.field(default_factory=LearnerConfig)
    checkpoint: Section[CheckpointConfig] = dataclasses.field(default_factory=CheckpointConfig)
    eval: Section[EvalConfig] = dataclasses.field(default_factory=EvalConfig)
    logging: Section[LoggingConfig] = dataclasses.field(default_factory=LoggingConfig)


# ---------------------------------------------------------------------------------------------
# dict <-> dataclass: pydantic validates, ConfigError says where (source, dotted key) and what


@functools.cache
def _hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)  # the plain types (Annotated constraints stripped)


@functools.cache
def _schema() -> TypeAdapter:
    return TypeAdapter(Config)


def _describe(tp) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    if origin is dict:
        return "a mapping"
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string",
            type(None): "null"}.get(tp, str(tp))


def _at(loc: tuple) -> tuple[str, Any]:
    """(dotted key, declared type) of a pydantic error location such as ('erm', 'hidden', 1)."""
    key, tp = "", Config
    for i, part in enumerate(loc):
        if part == "[key]":  # (after the key itself: the key is what is wrong)
            continue
        if typing.get_origin(tp) is dict:  # a mapping's value at key `part`, or the key itself
            kt, vt = typing.get_args(tp)
            key, tp = ((f"{key} (a key)", kt) if loc[i + 1:i + 2] == ("[key]",)
                       else (f"{key}[{part!r}]", vt))
        elif isinstance(part, int):
            key, tp = f"{key}[{part}]", typing.get_args(tp)[0]
        else:
            key, tp = f"{key}.{part}" if key else str(part), _hints(tp)[part]
    return key, tp


_RANGE = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"),
          "less_than_equal": ("<=", "le"), "less_than": ("<", "lt")}
_UNKNOWN = ("unexpected_keyword_argument", "invalid_key")


def _raw(data: Any, loc: tuple) -> Any:
    """The value at a pydantic error location in the mapping as written."""
    for part in loc:
        data = data[part]
    return data


def _position(data: Any, loc: tuple) -> tuple:
    """Where a location comes in the mapping as written (keys in their written order)."""
    out = []
    for part in loc:
        if isinstance(data, dict):
            keys = list(data)
            out.append(keys.index(part) if part in keys else len(keys))
            data = data.get(part)
        else:
            out.append(part if isinstance(part, int) else 0)
            data = data[part] if isinstance(data, (list, tuple)) and isinstance(part, int) else None
    return tuple(out)


def _message(err: dict, data: dict, source: str) -> str:
    """One pydantic error as a ConfigError text: source, dotted key, what was expected, a hint."""
    loc, value = tuple(err["loc"]), err["input"]
    if err["type"] in _UNKNOWN:
        section, cls = _at(loc[:-1])
        prefix = section + "." if section else ""
        if prefix + str(loc[-1]) in REMOVED:
            return str(_removed(prefix + str(loc[-1]), source))
        return str(_unknown(str(loc[-1]), prefix, list(_hints(cls)), source))
    key, tp = _at(loc)
    if err["type"] in _RANGE:
        op, name = _RANGE[err["type"]]
        plain = typing.get_args(tp)[0] if typing.get_origin(tp) in (typing.Union, types.UnionType) else tp
        value = _yaml_float(value) if plain is float else _yaml_int(value)  # as it was read
        return f"{source}: key '{key}' expected a value {op} {err['ctx'][name]}, got {value!r}"
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        value = _raw(data, loc)  # (a number that is also allowed null: the value as written)
    extra = ""
    if typing.get_origin(tp) is Literal:
        choices = [str(c) for c in typing.get_args(tp)]
        close = difflib.get_close_matches(str(value), choices, 1)
        extra = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{source}: key '{key}' expected {_describe(tp)}, got {value!r}{extra}"


def _validated(data: dict, source: str) -> Config:
    """The Config of a plain mapping, or the ConfigError of its first problem: the first unknown
    key or wrong type in the order written, else the first value out of range."""
    try:
        return _schema().validate_python(data)
    except ValidationError as e:
        errors = e.errors()
        typed = [err for err in errors if err["type"] not in _RANGE]
        first = min(typed, key=lambda err: _position(data, tuple(err["loc"]))) if typed else errors[0]
        raise ConfigError(_message(first, data, source)) from None


# keys that once existed but changed nothing: dotted key -> (the default they had, why they are
# gone). A run's config.yaml written before holds them at that default: dropped when read back;
# any other value is an error that says what to set instead.
REMOVED = {
    "policy.dtype": ("float32", "the learner's master weights are always float32; "
                                "'policy.compute_dtype' sets the generators' and forward passes' dtype"),
    "loss.slic_delta": (1.0, "the SLiC hinge margin is 1/beta (duel.losses.slic_loss); set 'loss.beta'"),
    "oracle.timeout_s": (60.0, "an HTTP oracle's timeout is 'oracle.options.timeout_s' (remote, judge)"),
}


# keys that moved: old dotted key -> new one. A config (or a run's config.yaml) that sets the old
# key still works, with a warning naming the new key; its value moves there (null is dropped).
RENAMED = {"prompts": "data.train"}


class ConfigDeprecation(FutureWarning):
    """A config key that still works but has a new name (shown by default, unlike DeprecationWarning)."""


def _renamed(data: dict, source: str) -> dict:
    """A copy of the raw mapping with RENAMED keys moved to their new place (top-level only)."""
    import warnings

    data = dict(data)
    for old, new in RENAMED.items():
        if old not in data:
            continue
        value = data.pop(old)
        if value is None:
            continue
        section, _, leaf = new.partition(".")
        node = data.get(section)
        node = dict(node) if isinstance(node, dict) else {}
        if node.get(leaf) not in (None, value):
            raise ConfigError(f"{source}: key '{old}' is the old name of '{new}', and both are set "
                              f"({value!r} and {node[leaf]!r}); keep only '{new}'")
        warnings.warn(f"{source}: key '{old}' is deprecated; it is read as '{new}' (write "
                      f"'{section}:\n  {leaf}: {value}')", ConfigDeprecation, stacklevel=3)
        node[leaf] = value
        data[section] = node
    return data


def _removed(key: str, source: str) -> ConfigError:
    return ConfigError(f"{source}: key '{key}' was removed: {REMOVED[key][1]}")


def _unknown(key: str, prefix: str, valid: list[str], source: str) -> ConfigError:
    close = difflib.get_close_matches(key, valid, 1, cutoff=0.5)
    hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
    where = f"section '{prefix[:-1]}'" if prefix else "the top level"
    return ConfigError(f"{source}: unknown key '{prefix}{key}'{hint}; valid keys in {where}: "
                       + ", ".join(valid))


def _without_removed(data: dict) -> dict:
    """A copy of the raw mapping without REMOVED keys held at their old default (a run's
    config.yaml written when the key existed); any other value is reported as removed."""
    data = dict(data)
    for key, (default, _) in REMOVED.items():
        section, _, leaf = key.partition(".")
        node = data.get(section)
        if isinstance(node, dict) and leaf in node and node[leaf] == default:
            data[section] = {k: v for k, v in node.items() if k != leaf}
    return data


def from_dict(data: dict | None, source: str = "<dict>") -> Config:
    """Build and validate a Config from a plain mapping (missing keys take their defaults)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, "
                          f"got {type(data).__name__}")
    cfg = _validated(_without_removed(_renamed(data, source)), source)
    _check_rules(cfg, source)
    return cfg


def to_dict(cfg: Config) -> dict:
    """Plain nested dict (tuples as lists) that `from_dict` reads back to an equal Config."""
    def plain(x):
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        return x
    return plain(dataclasses.asdict(cfg))


# ---------------------------------------------------------------------------------------------
# validation beyond types and ranges: cross-field rules, secrets

_SECRET = re.compile(r"(api_?key|secret|token|password|passwd|credential)", re.IGNORECASE)


def _secret_keys(d: dict, prefix: str):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _secret_keys(v, f"{prefix}{k}.")
        elif _SECRET.search(str(k)) and not str(k).endswith("_env") and v not in (None, ""):
            yield f"{prefix}{k}"


def validate(cfg: Config, source: str = "<config>") -> None:
    """A Config built in code checked as a file would be (types and ranges by pydantic), then the
    rules across fields and the no-secrets rule; raises ConfigError."""
    _validated(to_dict(cfg), source)
    _check_rules(cfg, source)


def _check_rules(cfg: Config, source: str) -> None:
    """Rules across fields, and the no-secrets rule."""
    if any(h < 1 for h in cfg.erm.hidden):
        raise ConfigError(f"{source}: key 'erm.hidden' expected positive layer widths, "
                          f"got {list(cfg.erm.hidden)}")
    _validate_learner(cfg, source)
    _validate_lora(cfg, source)
    if cfg.replay.updates and cfg.loss.kind == "xpo":
        raise ConfigError(f"{source}: key 'replay.updates' is {cfg.replay.updates}, but loss.kind "
                          "'xpo' needs each pair's reference sample, which the replay does not keep; "
                          "set replay.updates: 0 or another loss.kind")
    m = cfg.optim.micro_batches
    for key, rows in _update_batches(cfg):
        if rows % m:
            raise ConfigError(f"{source}: key '{key}' is {rows}, which 'optim.micro_batches' ({m}) must "
                              "divide (each update splits its pairs into equal micro-batches)")
    if cfg.loss.kind == "xpo" and cfg.explore.strategy != "xpo":
        raise ConfigError(f"{source}: key 'loss.kind' is 'xpo', whose exploration bonus needs candidates "
                          f"sampled from the reference; only 'explore.strategy: xpo' draws them, got "
                          f"{cfg.explore.strategy!r}")
    if cfg.erm.features == "gold" and (cfg.oracle.kind != "task" or not cfg.task or cfg.erm.encoder):
        raise ConfigError(f"{source}: key 'erm.features' is 'gold', a diagnostic that reads the task's gold "
                          f"reward: it needs the task's simulated oracle (oracle.kind 'task' and a task; got "
                          f"{cfg.oracle.kind!r}, task {cfg.task!r}) and no erm.encoder (got {cfg.erm.encoder!r})")
    if "max_retries" in cfg.oracle.options:
        raise ConfigError(f"{source}: key 'oracle.options.max_retries' moved: the one retry budget of "
                          "an oracle (its HTTP requests and the oracle pool alike) is 'oracle.max_retries'")
    for section in ("oracle.options", "explore.options"):
        d = cfg.oracle.options if section == "oracle.options" else cfg.explore.options
        for key in _secret_keys(d, section + "."):
            raise ConfigError(
                f"{source}: key '{key}' looks like a secret; secrets never go in a config. "
                f"Put it in an environment variable and set '{key}_env: VAR_NAME' instead")


def _validate_lora(cfg: Config, source: str) -> None:
    lc = cfg.policy.lora
    if not lc.rank:  # off: its other keys are not used (and the model library is not imported)
        return
    from duel.models.lora import TARGETS

    bad = [t for t in lc.targets if t not in TARGETS]
    if bad or not lc.targets or len(set(lc.targets)) != len(lc.targets):
        close = difflib.get_close_matches(str(bad[0]), TARGETS, 1) if bad else []
        raise ConfigError(f"{source}: key 'policy.lora.targets' expected distinct projection names among "
                          f"{', '.join(TARGETS)}, got {list(lc.targets)}"
                          + (f" (did you mean {close[0]!r}?)" if close else ""))


def _validate_learner(cfg: Config, source: str) -> None:
    """Sharding rules that need no device: several processes need a mesh strategy, and the
    pairs of a step must split over the learner's devices when their count is known here
    (`resources.learner_gpus` whole GPUs per process). The Learner checks the real count."""
    lc = cfg.learner
    if lc.processes > 1 and lc.sharding == "none":
        raise ConfigError(f"{source}: key 'learner.processes' is {lc.processes}, which needs "
                          f"'learner.sharding' dp or fsdp (one mesh over every process), got 'none'")
    gpus = cfg.resources.learner_gpus
    if lc.sharding != "none" and gpus >= 1 and float(gpus).is_integer():
        check_learner_devices(cfg, lc.processes * int(gpus), source,
                              f"learner.processes={lc.processes} x resources.learner_gpus={int(gpus)}")


def prompts_at(cfg: Config, step: int) -> int:
    """The prompts of loop step `step` (from 0): the value of the largest key of
    `prompts_per_step_from` that is <= step, else `prompts_per_step`. A function of the step
    alone, so a resumed run takes the same batches as an uninterrupted one."""
    keys = [k for k in cfg.prompts_per_step_from if k <= step]
    return cfg.prompts_per_step_from[max(keys)] if keys else cfg.prompts_per_step


def _update_batches(cfg: Config) -> list[tuple[str, int]]:
    """(key, pairs) of each batch one policy update trains on: the step's fresh pairs (every size
    of the schedule) and, with label replay, a replayed batch (`replay.batch`; 0 = the step's
    prompts, already listed)."""
    out = [("prompts_per_step", cfg.prompts_per_step)]
    out += [(f"prompts_per_step_from.{k}", v) for k, v in sorted(cfg.prompts_per_step_from.items())]
    if cfg.replay.updates and cfg.replay.batch:
        out.append(("replay.batch", cfg.replay.batch))
    return out


def check_learner_devices(cfg: Config, devices: int, source: str = "<config>", how: str = "") -> None:
    """ConfigError unless each update's pairs (`_update_batches`) split evenly over `devices`
    learner devices."""
    if cfg.learner.sharding == "none":
        return
    for key, rows in _update_batches(cfg):
        if rows % devices:
            raise ConfigError(
                f"{source}: key '{key}' ({rows}) must be a multiple of the learner's device count "
                f"{devices}{f' ({how})' if how else ''} with 'learner.sharding: {cfg.learner.sharding}' "
                "(each device takes an equal share of the pairs)")


# ---------------------------------------------------------------------------------------------
# files, presets and --set overrides


def _resolve(path: str | Path) -> Path:
    p = Path(path)
    if p.suffix in (".yaml", ".yml") or p.exists() or len(p.parts) > 1:
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        return p
    raise ConfigError(f"{str(path)!r} is not a YAML file; a preset name is resolved by "
                      "launch.presets.load_config (the `duel` command line)")


def _override_source(override: str) -> str:
    """How an override is named in errors; a secret-looking key never has its value echoed."""
    key = override.split("=", 1)[0]
    if _SECRET.search(key) and "=" in override:
        return f"--set {key}=<hidden>"
    return f"--set {override}"


def _set(data: dict, override: str) -> None:
    source = _override_source(override)
    if "=" not in override:
        raise ConfigError(f"{source}: expected KEY=VALUE, e.g. --set explore.strategy=bai_ts")
    key, raw = override.split("=", 1)
    key = key.strip()
    key = RENAMED.get(key, key)  # (from_dict warns once the old key reaches a config)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: value {raw!r} is not valid YAML ({e})") from None
    parts = key.split(".")
    if not all(parts):
        raise ConfigError(f"{source}: malformed key {key!r}")
    # walk the schema while we can, so typos in section names are caught here with a suggestion
    cls, node, prefix = Config, data, ""
    for part in parts[:-1]:
        if cls is not None:
            hints = _hints(cls)
            if part not in hints:
                raise _unknown(part, prefix, list(hints), source)
            tp = hints[part]
            cls = tp if dataclasses.is_dataclass(tp) else None
            if cls is None and typing.get_origin(tp) is not dict:
                raise ConfigError(f"{source}: key '{prefix}{part}' is {_describe(tp)}, "
                                  f"not a section; cannot set '{key}'")
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(f"{source}: key '{prefix}{part}' is not a mapping; "
                              f"cannot set '{key}'")
        node, prefix = nxt, prefix + part + "."
    if cls is not None:
        hints = _hints(cls)
        if parts[-1] not in hints and key in REMOVED:
            raise _removed(key, source)
        if parts[-1] not in hints:
            raise _unknown(parts[-1], prefix, list(hints), source)
        if value is not None and not isinstance(value, str) and _takes_str(hints[parts[-1]]):
            value = raw.strip()  # run_dir=2024-01-01, task=123: keep the text YAML would convert
    node[parts[-1]] = value


def _takes_str(tp) -> bool:
    return tp is str or (typing.get_origin(tp) in (typing.Union, types.UnionType)
                         and str in typing.get_args(tp))


def load_config(name_or_path: str | Path | None, overrides: list[str] | tuple = ()) -> Config:
    """Read a YAML file (None = defaults), apply `--set` overrides, validate."""
    if name_or_path is None:
        source, data = "<defaults>", {}
    else:
        path = _resolve(name_or_path)
        source = str(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({e})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level, "
                              f"got {type(data).__name__}")
    blocks = _per_strategy(data, source)
    from_dict(data, source)  # errors in the file are reported against the file
    for name, block in blocks.items():  # ... and each block's against the block, whichever runs
        from_dict(_merged(data, block), f"{source}: per_strategy.{name}")
    if blocks:
        probe = copy.deepcopy(data)  # only to learn the strategy --set leaves
        for override in overrides:
            _set(probe, override)
        strategy = (probe.get("explore") or {}).get("strategy", ExploreConfig().strategy)
        data = _merged(data, blocks.get(strategy, {}))
        if strategy in blocks:
            source = f"{source} (per_strategy.{strategy})"
    for override in overrides:
        _set(data, override)
        from_dict(data, _override_source(override))  # ... and errors from an override against it
    return from_dict(data, source if not overrides else f"{source} with --set overrides")


PER_STRATEGY = "per_strategy"


def _per_strategy(data: dict, source: str) -> dict[str, dict]:
    """Take the file's `per_strategy:` blocks out of `data` (checked: strategy names, mappings)."""
    blocks = data.pop(PER_STRATEGY, None)
    if blocks is None:
        return {}
    if not isinstance(blocks, dict):
        raise ConfigError(f"{source}: key '{PER_STRATEGY}' must map strategy names to settings, "
                          f"got {type(blocks).__name__}")
    names = typing.get_args(Strategy)
    for name, block in blocks.items():
        if name not in names:
            close = difflib.get_close_matches(str(name), names, n=1)
            raise ConfigError(f"{source}: key '{PER_STRATEGY}.{name}': not a strategy; expected one "
                              f"of {', '.join(names)}" + (f" (did you mean '{close[0]}'?)" if close else ""))
        if not isinstance(block, dict):
            raise ConfigError(f"{source}: key '{PER_STRATEGY}.{name}' must be a mapping of settings, "
                              f"got {type(block).__name__}")
        if "explore" in block and isinstance(block["explore"], dict) and "strategy" in block["explore"]:
            raise ConfigError(f"{source}: key '{PER_STRATEGY}.{name}.explore.strategy': a block "
                              "cannot change the strategy that selects it")
    return blocks


def _merged(base: dict, over: dict) -> dict:
    """A deep copy of `base` with `over` laid on top (mappings merge key by key, other values
    replace)."""
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merged(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def save_config(cfg: Config, path: str | Path) -> Path:
    """Write the resolved config as YAML (validated first: secrets cannot reach the file)."""
    validate(cfg, str(path))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False, default_flow_style=False))
    tmp.replace(path)
    return path

"""duel.config: round trip, presets, overrides, and the error messages for bad keys and values."""

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from duel.config import (
    Config,
    ConfigError,
    from_dict,
    load_config,
    save_config,
    to_dict,
)


DEMO = Path(__file__).resolve().parents[2] / "launch" / "configs" / "demo.yaml"


def test_defaults_are_valid_and_documented_names_exist():
    cfg = load_config(None)
    assert cfg == Config()
    # no task by default: a run names its task, or gives its data (learner.setup.resolve_task)
    assert (cfg.seed, cfg.task, cfg.budget, cfg.explore.strategy) == (0, None, None, "ee_ts")
    assert cfg.erm.hidden == (128, 128) and cfg.mode == "sync" and cfg.max_staleness == 0


def test_round_trip_through_yaml(tmp_path):
    cfg = load_config(None, ["seed=7", "explore.strategy=bai_ts", "budget=2000",
                             "erm.hidden=[64, 32]", "oracle.kind=http",
                             "oracle.options.url=http://judge:8000", "policy.compute_dtype=bfloat16",
                             "loss.kind=ipo", "mode=async", "max_staleness=2"])
    path = save_config(cfg, tmp_path / "run" / "config.yaml")
    raw = yaml.safe_load(path.read_text())
    assert raw["seed"] == 7 and raw["explore"]["strategy"] == "bai_ts" and raw["budget"] == 2000
    assert raw["erm"]["hidden"] == [64, 32]
    again = load_config(path)
    assert again == cfg and again.erm.hidden == (64, 32)
    assert again.oracle.options == {"url": "http://judge:8000"}
    assert from_dict(to_dict(cfg)) == cfg


def test_file_values_and_overrides_are_coerced(tmp_path):
    p = tmp_path / "exp.yaml"
    p.write_text("optim:\n  lr: 1e-5\nsteps: 10\nbudget: 1.0e3\nsampling: {temperature: 1}\n")
    cfg = load_config(p, ["steps=20", "sampling.top_p=0.9"])
    assert cfg.optim.lr == 1e-5 and isinstance(cfg.optim.lr, float)  # YAML 1.1 reads a str
    assert cfg.budget == 1000 and isinstance(cfg.budget, int)
    assert cfg.sampling.temperature == 1.0 and isinstance(cfg.sampling.temperature, float)
    assert cfg.steps == 20 and cfg.sampling.top_p == 0.9
    assert load_config(p, ["budget=null"]).budget is None
    # a string field keeps the text YAML would have turned into a date or a number
    cfg = load_config(None, ["run_dir=2024-01-01", "task=123", "policy.path=null"])
    assert (cfg.run_dir, cfg.task, cfg.policy.path) == ("2024-01-01", "123", None)


def test_unknown_key_in_file_names_file_key_and_suggestion(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("explore:\n  stratgy: bai_ts\n")
    with pytest.raises(ConfigError) as e:
        load_config(p)
    msg = str(e.value)
    assert str(p) in msg and "'explore.stratgy'" in msg and "did you mean 'explore.strategy'" in msg
    assert "valid keys in section 'explore': strategy, options" in msg


def test_unknown_section_from_set_names_the_override():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["optm.lr=0.1"])
    msg = str(e.value)
    assert msg.startswith("--set optm.lr=0.1:") and "did you mean 'optim'" in msg


def test_invalid_enum_lists_the_valid_choices():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["explore.strategy=bai"])
    msg = str(e.value)
    assert "'explore.strategy'" in msg and "did you mean 'bai_ts'" in msg
    for name in ("passive", "ee_ts", "bai_ts", "uncertainty", "apl", "xpo", "bon_won"):
        assert repr(name) in msg
    with pytest.raises(ConfigError, match=r"'loss.kind' expected one of 'dpo', 'rdpo'"):
        from_dict({"loss": {"kind": "orpo"}})


@pytest.mark.parametrize("override,expect", [
    ("steps=ten", "key 'steps' expected an integer, got 'ten'"),
    ("erm.bootstrap=1", "key 'erm.bootstrap' expected true/false, got 1"),
    ("erm.hidden=[64, x]", "key 'erm.hidden[1]' expected an integer, got 'x'"),
    ("explore=bai_ts", "key 'explore' expected a mapping, got 'bai_ts'"),
    ("sampling.top_p=1.5", "key 'sampling.top_p' expected a value <= 1.0, got 1.5"),
    ("sampling.temperature=0", "key 'sampling.temperature' expected a value > 0.0, got 0.0"),
    ("candidates=1", "key 'candidates' expected a value >= 2, got 1"),
    ("mixed.gamma=1.0", "key 'mixed.gamma' expected a value < 1.0, got 1.0"),
    ("mixed.min_confidence=0.4", "key 'mixed.min_confidence' expected a value >= 0.5, got 0.4"),
    ("mixed.unconfident=skip", "key 'mixed.unconfident' expected one of 'ask', 'drop', got 'skip'"),
    ("mixed.pair=best", "key 'mixed.pair' expected one of 'member', 'mean', got 'best'"),
    ("candidates=1.0e0", "key 'candidates' expected a value >= 2, got 1"),
    ("budget=1.5", "key 'budget' expected an integer or null, got 1.5"),
    ("erm.hidden=64", "key 'erm.hidden' expected a list of an integer, got 64"),
    ("sampling.temperature=nan", "key 'sampling.temperature' expected a value > 0.0, got nan"),
    ("seed", "expected KEY=VALUE"),
    ("steps.x=1", "key 'steps' is an integer, not a section"),
    ("prompts_per_step_from={0: 32}", "key 'prompts_per_step_from (a key)' expected a value >= 1, got 0"),
    ("prompts_per_step_from={x: 32}", "key 'prompts_per_step_from (a key)' expected an integer, got 'x'"),
    ("prompts_per_step_from={10: 0}", "key 'prompts_per_step_from[10]' expected a value >= 1, got 0"),
    ("prompts_per_step_from=32", "key 'prompts_per_step_from' expected a mapping, got 32"),
])
def test_wrong_types_and_ranges(override, expect):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert str(e.value).startswith(f"--set {override}:") and expect in str(e.value)


def test_the_first_problem_in_the_order_written_is_reported():
    # pydantic finds every problem; the message names the first unknown key or wrong type as
    # written (a typo before a range), as the hand-written validation did
    with pytest.raises(ConfigError, match=r"^<dict>: unknown key 'bogus'"):
        from_dict({"bogus": 1, "data": [], "steps": 0})
    with pytest.raises(ConfigError, match=r"^<dict>: key 'data' expected a mapping, got \[\]"):
        from_dict({"steps": 0, "data": [], "bogus": 1})
    with pytest.raises(ConfigError, match=r"^<dict>: key 'steps' expected a value >= 1, got 0"):
        from_dict({"candidates": 1, "steps": 0})  # ranges in the order of the fields


def test_a_config_built_in_code_is_validated_like_a_file(tmp_path):
    cfg = Config()
    with pytest.raises(ConfigError, match=r"x.yaml: key 'sampling.top_p' expected a value <= 1.0, got 2.0"):
        save_config(dataclasses.replace(cfg, sampling=dataclasses.replace(cfg.sampling, top_p=2.0)),
                    tmp_path / "x.yaml")


def test_secret_values_are_refused_and_never_echoed(tmp_path):
    with pytest.raises(ConfigError) as e:
        load_config(None, ["oracle.options.api_key=sk-very-secret"])
    msg = str(e.value)
    assert "sk-very-secret" not in msg and "'oracle.options.api_key'" in msg
    assert "api_key_env" in msg
    cfg = load_config(None, ["oracle.options.api_key_env=OPENAI_API_KEY"])
    text = save_config(cfg, tmp_path / "c.yaml").read_text()
    assert "api_key_env: OPENAI_API_KEY" in text
    bad = dataclasses.replace(cfg, oracle=dataclasses.replace(cfg.oracle, options={"token": "t0k"}))
    with pytest.raises(ConfigError):
        save_config(bad, tmp_path / "d.yaml")
    assert not (tmp_path / "d.yaml").exists()


def test_one_oracle_retry_budget():
    # the HTTP client and the oracle pool spend one budget, oracle.max_retries
    with pytest.raises(ConfigError, match=r"--set oracle.options.max_retries=5: key "
                                          r"'oracle.options.max_retries' moved: .* is 'oracle.max_retries'"):
        load_config(None, ["oracle.options.max_retries=5"])
    assert load_config(None, ["oracle.max_retries=5"]).oracle.max_retries == 5


def test_missing_file_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    p = tmp_path / "list.yaml"
    p.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match=rf"{p}: expected a mapping at the top level, got list"):
        load_config(p)


def test_xpo_loss_needs_a_strategy_that_samples_the_reference():
    # only strategy xpo draws candidates from the reference; the XPO bonus needs one per pair
    with pytest.raises(ConfigError, match=r"--set loss.kind=xpo: key 'loss.kind' is 'xpo'.*got 'ee_ts'"):
        load_config(DEMO, ["loss.kind=xpo"])
    with pytest.raises(ConfigError, match="key 'loss.kind' is 'xpo'.*got 'passive'"):
        from_dict({"loss": {"kind": "xpo"}, "explore": {"strategy": "passive"}})
    cfg = load_config(DEMO, ["explore.strategy=xpo", "loss.kind=xpo"])
    assert (cfg.loss.kind, cfg.explore.strategy) == ("xpo", "xpo")


@pytest.mark.parametrize("key, old, new", [("policy.dtype", "float32", "bfloat16"),
                                           ("loss.slic_delta", 1.0, 2.0),
                                           ("oracle.timeout_s", 60.0, 5.0)])
def test_removed_keys_fail_with_what_to_set_and_old_run_configs_still_load(tmp_path, key, old, new):
    section, name = key.split(".")
    with pytest.raises(ConfigError, match=rf"--set {key}={new}: key '{key}' was removed: "):
        load_config(None, [f"{key}={new}"])
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump({section: {name: new}}))
    with pytest.raises(ConfigError, match=rf"{p}: key '{key}' was removed"):
        load_config(p)
    # a run's config.yaml written while the key existed holds its default, which changed nothing
    p.write_text(yaml.safe_dump({section: {name: old}, "seed": 3}))
    assert load_config(p) == Config(seed=3)


def test_library_configs_take_the_run_config_names():
    """One name per concept: a section's field is the library config's field of the same name and
    value (a renamed field would leave the library's default in place); the exceptions are listed."""
    from actors.generator import GeneratorSpec
    from duel.models.lora import from_config as lora_spec
    from learner.configs import erm_config, reference_schedule, train_config

    cfg = load_config(None, [
        "steps=30", "seed=4", "erm.lr=0.002", "erm.bootstrap=false", "erm.hidden=[16, 8]",
        "erm.anchor_lambda=2.0", "erm.num_members=3", "erm.steps_per_update=2",
        "loss.kind=simpo", "loss.beta=0.3", "loss.label_smoothing=0.1", "loss.simpo_gamma=0.7",
        "loss.xpo_alpha=0.01", "loss.nll_weight=0.2", "optim.lr=1e-4", "optim.warmup_steps=3",
        "optim.weight_decay=0.01", "optim.clip_norm=0", "optim.min_lr_ratio=0.5",
        "optim.micro_batches=2", "optim.remat=true", "policy.compute_dtype=bfloat16",
        "sampling.temperature=0.7", "sampling.top_p=0.9", "sampling.top_k=5", "sampling.max_new_tokens=9",
        "policy.lora.rank=4", "policy.lora.alpha=8.0", "policy.lora.dropout=0.1", "policy.lora.targets=[q, v]",
        "reference.schedule=stepwise", "reference.tau=0.2", "reference.every=3"])

    def same(section, lib, unused=()):
        names = {f.name for f in dataclasses.fields(section)} - set(unused)
        assert names <= {f.name for f in dataclasses.fields(lib)}, type(lib).__name__
        for name in names:
            assert getattr(lib, name) == getattr(section, name), (type(lib).__name__, name)

    same(cfg.erm, erm_config(cfg), unused={"buffer_size", "encoder", "features", "words_weight"})  # the learner's, the generators'
    t = train_config(cfg)
    same(cfg.loss, t, unused={"kind"})
    same(cfg.optim, t)
    assert (t.loss, t.total_steps, t.seed, t.compute_dtype) == ("simpo", 30, 4, "bfloat16")
    same(cfg.sampling, GeneratorSpec.from_config(cfg).sampling)
    same(cfg.policy.lora, lora_spec(cfg.policy))
    same(cfg.reference, reference_schedule(cfg))
    assert reference_schedule(load_config(None, ["reference.schedule=stepwise"])).every == 1  # every: 0


def test_learning_rate_schedule_and_compute_dtype_are_explicit():
    from learner.configs import train_config

    t = train_config(load_config(None, ["steps=50"]))
    assert (t.min_lr_ratio, t.total_steps, t.compute_dtype) == (1.0, 50, "float32")  # constant after warmup
    t = train_config(load_config(None, ["optim.min_lr_ratio=0.1", "policy.compute_dtype=bfloat16"]))
    assert (t.min_lr_ratio, t.compute_dtype) == (0.1, "bfloat16")
    with pytest.raises(ConfigError, match="'policy.compute_dtype' expected one of 'float32', 'bfloat16', got 'float16'"):
        load_config(None, ["policy.compute_dtype=float16"])


PER_STRATEGY = """\
task: demo
candidates: 4
replay: {updates: 10}
per_strategy:
  ee_ts:
    candidates: 8
    mixed: {gamma: 0.9375}
    replay: {updates: 2}
  bai_ts: {loss: {beta: 0.2}}
"""


def test_per_strategy_block_lies_between_the_file_and_set(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(PER_STRATEGY)
    ee = load_config(path)  # the default strategy is ee_ts: its block applies
    assert (ee.explore.strategy, ee.candidates, ee.mixed.gamma, ee.replay.updates) == ("ee_ts", 8, 0.9375, 2)
    assert ee.replay.capacity == Config().replay.capacity  # a block merges into a section
    passive = load_config(path, ["explore.strategy=passive"])  # no block: the file alone
    assert (passive.candidates, passive.mixed.gamma, passive.replay.updates) == (4, 0.0, 10)
    bai = load_config(path, ["explore.strategy=bai_ts", "loss.beta=0.3"])  # --set beats the block
    assert (bai.candidates, bai.loss.beta, bai.replay.updates) == (4, 0.3, 10)
    over = load_config(path, ["candidates=16"])
    assert (over.candidates, over.mixed.gamma) == (16, 0.9375)


def test_per_strategy_block_is_resolved_away_in_the_saved_config(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(PER_STRATEGY)
    cfg = load_config(path, ["explore.strategy=bai_ts"])
    saved = save_config(cfg, tmp_path / "run" / "config.yaml")
    assert "per_strategy" not in yaml.safe_load(saved.read_text())
    assert load_config(saved) == cfg
    # the same settings given as --set overrides resolve to the same config
    plain = tmp_path / "plain.yaml"
    plain.write_text("task: demo\ncandidates: 4\nreplay: {updates: 10}\n")
    assert load_config(plain, ["explore.strategy=bai_ts", "loss.beta=0.2"]) == cfg


@pytest.mark.parametrize("block, pattern", [
    ("per_strategy: [ee_ts]", r"recipe.yaml: key 'per_strategy' must map strategy names to settings, got list"),
    ("per_strategy: {ee_tss: {candidates: 8}}",
     r"recipe.yaml: key 'per_strategy.ee_tss': not a strategy; expected one of passive, .*did you mean 'ee_ts'"),
    ("per_strategy: {ee_ts: 8}", r"key 'per_strategy.ee_ts' must be a mapping of settings, got int"),
    ("per_strategy: {bai_ts: {explore: {strategy: passive}}}",
     r"key 'per_strategy.bai_ts.explore.strategy': a block cannot change the strategy that selects it"),
    # an error in a block is found whichever strategy runs, and named by its block
    ("per_strategy: {bai_ts: {mixed: {gama: 0.5}}}", r"recipe.yaml: per_strategy.bai_ts.*mixed.gama.*gamma"),
    ("per_strategy: {bai_ts: {candidates: 0}}", r"recipe.yaml: per_strategy.bai_ts.*candidates"),
])
def test_per_strategy_errors_name_the_file_and_block(tmp_path, block, pattern):
    path = tmp_path / "recipe.yaml"
    path.write_text("task: demo\n" + block + "\n")
    with pytest.raises(ConfigError, match=pattern):
        load_config(path, ["explore.strategy=passive"])


def test_learning_rate_schedule_counts_loop_steps_with_replay():
    """`steps` and `optim.warmup_steps` count loop steps; with label replay the learner makes
    1 + replay.updates optimizer updates per loop step, and the schedule (which counts updates)
    is that many times longer: it reaches lr * min_lr_ratio at the run's last update."""
    from duel.train import learning_rate_schedule
    from learner.configs import train_config

    over = ["steps=40", "optim.lr=1e-4", "optim.warmup_steps=2", "optim.min_lr_ratio=0.1"]
    t = train_config(load_config(None, over + ["replay.updates=10"]))
    assert (t.total_steps, t.warmup_steps) == (440, 22)
    lr = learning_rate_schedule(t)
    assert float(lr(22)) == pytest.approx(1e-4)  # warmup over 2 loop steps of 11 updates
    assert float(lr(440)) == pytest.approx(1e-5)  # the floor at the 40th loop step's last update
    assert float(lr(220)) > 5e-5  # still high halfway: the old horizon (40 updates) had hit the floor
    t = train_config(load_config(None, over))  # no replay: one update per loop step, unchanged
    assert (t.total_steps, t.warmup_steps) == (40, 2)


def test_a_prompts_per_step_schedule_is_a_function_of_the_step(tmp_path):
    from duel.config import prompts_at

    cfg = load_config(None, ["prompts_per_step=16", "prompts_per_step_from={170: 32, 400: 64}"])
    assert [prompts_at(cfg, s) for s in (0, 169, 170, 399, 400, 10_000)] == [16, 16, 32, 32, 64, 64]
    assert prompts_at(load_config(None, ["prompts_per_step=16"]), 500) == 16  # no schedule
    # one key at a time from --set; the YAML file and the run directory's JSON read back equal
    assert load_config(None, ["prompts_per_step_from.170=32"]).prompts_per_step_from == {170: 32}
    again = load_config(save_config(cfg, tmp_path / "config.yaml"))
    assert again == cfg and from_dict(json.loads(json.dumps(to_dict(cfg)))) == cfg  # JSON: "170"
    # every size of the schedule must split into the micro-batches, each named by its key
    with pytest.raises(ConfigError, match=r"key 'prompts_per_step_from.170' is 30, which "
                                          r"'optim.micro_batches' \(4\) must divide"):
        load_config(None, ["prompts_per_step=16", "prompts_per_step_from={170: 30}", "optim.micro_batches=4"])

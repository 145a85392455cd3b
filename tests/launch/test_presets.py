"""launch.presets: preset names resolve to launch/configs/NAME.yaml; duel.config reads files only."""

from pathlib import Path

import jax
import pytest

from duel.config import ConfigError
from duel.config import load_config as load_file
from duel.explore import synthetic_mask
from launch.presets import load_config, presets_dir


def test_preset_name_resolves_to_launch_configs(tmp_path, monkeypatch):
    monkeypatch.setattr("launch.presets.presets_dir", lambda: tmp_path)
    (tmp_path / "tiny.yaml").write_text("task: arith\ncandidates: 6\n")
    cfg = load_config("tiny")
    assert (cfg.task, cfg.candidates) == ("arith", 6)
    pattern = r"'tinny' is neither.*did you mean 'tiny'.*presets: tiny$"
    with pytest.raises(ConfigError, match=pattern):
        load_config("tinny")


def test_presets_dir_is_inside_the_launch_package():
    import launch

    assert presets_dir().parent.samefile(Path(launch.__file__).parent)
    assert {"demo", "pythia-1b", "qwen2.5-0.5b"} <= {p.stem for p in presets_dir().glob("*.yaml")}


def test_a_path_is_read_as_a_file_and_duel_config_knows_no_presets():
    demo = presets_dir() / "demo.yaml"
    assert load_config(str(demo), ["steps=3"]) == load_file(demo, ["steps=3"])
    assert load_config("demo").steps == 60
    with pytest.raises(ConfigError, match="'demo' is not a YAML file; a preset name is resolved by launch"):
        load_file("demo")


# the finals' settings as docs/results/run_final6.sh (xpo, apl), run_final7.sh (passive) and
# run_final9.sh (ee_ts, bai_ts) pass them to `duel sweep launch/configs/recipe-sea.yaml --set-for`
R9 = ("mixed.burn_in=2 loss.beta=0.2 mixed.min_confidence=0.75 mixed.unconfident=drop "
      "erm.features=hidden_probs candidates=8 resources.generators=1 mixed.gamma=0.9375 "
      "eval.every=80 replay.updates=2").split()
FINALS = {"passive": ["replay.updates=10"], "xpo": ["replay.updates=10"], "apl": ["replay.updates=10"],
          "ee_ts": R9, "bai_ts": R9}


@pytest.mark.parametrize("task, extra", [("sort", []), ("arithmetic", []),
                                         ("style", ["sampling.max_new_tokens=16", "eval.greedy=false"])])
def test_recipe_r9_is_the_ninth_round_finals_in_one_file(task, extra):
    for strategy, sets in FINALS.items():
        common = [f"task={task}", *extra, f"explore.strategy={strategy}", "seed=3", "run_dir=runs/x"]
        one_file = load_config("recipe-r9", common)
        scripts = load_config("recipe-sea", [*common[:-3], *sets, *common[-3:]])
        assert one_file == scripts, strategy
    assert load_config("recipe-r9", [f"task={task}"]).candidates == 8  # ee_ts by default


@pytest.mark.parametrize("task", ["sort", "reverse_task:Reverse"])
def test_recipe_r13_is_recipe_r9_with_passive_xpo_apl_at_beta_0_2(task):
    for strategy in ["passive", "xpo", "apl", "ee_ts", "bai_ts"]:
        common = [f"task={task}", f"explore.strategy={strategy}", "seed=3", "run_dir=runs/x"]
        r13 = load_config("recipe-r13", common)
        beta = [] if strategy in ("ee_ts", "bai_ts") else ["loss.beta=0.2"]
        assert r13 == load_config("recipe-r9", [*common, *beta]), strategy
        assert r13.loss.beta == 0.2


def test_recipe_r16_style_is_recipe_r13_at_style_with_the_bag_of_words_for_the_active_strategies():
    style = ["task=style", "sampling.max_new_tokens=16", "eval.greedy=false"]
    words = ["erm.features=hidden_probs_words", "erm.words_weight=0.5"]
    for strategy in ["passive", "xpo", "apl", "ee_ts", "bai_ts"]:
        common = [f"explore.strategy={strategy}", "seed=7", "run_dir=runs/x"]
        r16 = load_config("recipe-r16-style", common)
        extra = words if strategy in ("ee_ts", "bai_ts") else []
        assert r16 == load_config("recipe-r13", [*style, *common, *extra]), strategy
        assert r16.task == "style" and r16.sampling.max_new_tokens == 16 and not r16.eval.greedy
        assert (r16.erm.features == "hidden_probs_words") == (strategy in ("ee_ts", "bai_ts"))
        assert r16.erm.num_members == 8 and tuple(r16.erm.hidden) == (64,)


def test_recipe_r22_arithmetic_is_recipe_r13_with_32_prompts_one_paid_for_the_active_strategies():
    p32 = ["prompts_per_step=32", "mixed.gamma=0.96875", "replay.batch=16"]
    for strategy in ["passive", "xpo", "apl", "ee_ts", "bai_ts"]:
        common = [f"explore.strategy={strategy}", "seed=7", "run_dir=runs/x"]
        r22 = load_config("recipe-r22-arithmetic", common)
        extra = p32 if strategy in ("ee_ts", "bai_ts") else []
        assert r22 == load_config("recipe-r13", ["task=arithmetic", *common, *extra]), strategy
        assert r22.task == "arithmetic"
        if strategy in ("ee_ts", "bai_ts"):  # one generator: after the burn-in, one paid prompt per step
            assert r22.resources.generators == 1
            ask = ~synthetic_mask(jax.random.key(0), r22.prompts_per_step, r22.mixed.gamma, step=2, burn_in=2)
            assert ask.sum() == 1


def test_recipe_r25_arithmetic_is_recipe_r22_with_64_prompts_one_paid_for_bai_ts():
    p64 = ["prompts_per_step=64", "mixed.gamma=0.984375", "mixed.burn_in=1"]
    for strategy in ["passive", "xpo", "apl", "ee_ts", "bai_ts"]:
        common = [f"explore.strategy={strategy}", "seed=7", "run_dir=runs/x"]
        r25 = load_config("recipe-r25-arithmetic", common)
        extra = p64 if strategy == "bai_ts" else []
        assert r25 == load_config("recipe-r22-arithmetic", [*common, *extra]), strategy
        if strategy == "bai_ts":  # one burn-in step of 64 paid prompts, then one paid prompt per step
            assert r25.resources.generators == 1 and r25.replay.batch == 16
            assert not synthetic_mask(jax.random.key(0), 64, r25.mixed.gamma, step=0, burn_in=1).any()
            ask = ~synthetic_mask(jax.random.key(0), 64, r25.mixed.gamma, step=1, burn_in=1)
            assert ask.sum() == 1

"""duel.imports.import_object: user specs "module.path:name" (tasks, rule-oracle rewards)."""

import pytest

from duel.imports import import_object
from duel.oracles.rule import resolve_reward
from duel.tasks import get_task


def test_import_object_finds_the_attribute():
    import os.path

    assert import_object("os.path:join", "x") is os.path.join


@pytest.mark.parametrize("spec, needle", [("os.path", "expected 'module.path:name'"),
                                          ("no_such_module_xyz:f", "No module named"),
                                          ("os.path:no_such_attr", "no_such_attr")])
def test_import_object_errors_name_what_and_why(spec, needle):
    with pytest.raises(ValueError) as e:
        import_object(spec, f"task {spec!r}")
    assert f"task {spec!r}" in str(e.value) and needle in str(e.value)


def test_task_and_reward_specs_use_it():
    from duel.tasks.arithmetic import Arithmetic

    assert isinstance(get_task("duel.tasks.arithmetic:Arithmetic"), Arithmetic)
    with pytest.raises(ValueError, match="expected a subclass"):
        get_task("os.path:join")
    with pytest.raises(ValueError, match="rule oracle: reward 'os.path:nope'.*cannot import"):
        resolve_reward("os.path:nope")
    with pytest.raises(ValueError, match="not callable"):
        resolve_reward("os.path:sep")

"""`import_object("module.path:attr")`: the one place that turns a user's import spec into an object.

Used wherever a config names user code (a rule oracle's reward, a task class).
"""

from __future__ import annotations

import importlib


def import_object(spec: str, what: str):
    """The attribute `attr` of module `module.path` for spec "module.path:attr".

    Errors are ValueErrors that name `what` (e.g. "task 'my.mod:Cls'") and the cause."""
    mod, sep, attr = spec.partition(":")
    if not sep or not mod or not attr:
        raise ValueError(f"{what}: expected 'module.path:name', got {spec!r}")
    try:
        return getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"{what}: cannot import it: {e}") from e

"""Presets: `launch/configs/NAME.yaml`, and the `load_config` that takes a preset name or a path.

    cfg = load_config("demo", ["explore.strategy=bai_ts"])     # launch/configs/demo.yaml
    cfg = load_config("my.yaml")                               # a file: duel.config.load_config

A name ending in .yaml/.yml, naming an existing file or holding a directory part is a path;
anything else is a preset (an unknown one fails with the closest name and the list).
"""

from __future__ import annotations

import difflib
from pathlib import Path

from duel import config as C


def presets_dir() -> Path:
    """launch/configs/ next to this package."""
    return Path(__file__).resolve().parent / "configs"


def resolve(name_or_path: str | Path) -> Path:
    """A preset name -> its YAML file; a path is returned as it is."""
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") or p.exists() or len(p.parts) > 1:
        return p
    preset = presets_dir() / f"{name_or_path}.yaml"
    if not preset.is_file():
        names = sorted(x.stem for x in presets_dir().glob("*.yaml"))
        close = difflib.get_close_matches(str(name_or_path), names, 1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise C.ConfigError(f"{name_or_path!r} is neither a YAML file nor a preset in "
                            f"{presets_dir()}{hint}; presets: {', '.join(names) or '(none)'}")
    return preset


def load_config(name_or_path: str | Path | None, overrides: list[str] | tuple = ()) -> C.Config:
    """`duel.config.load_config` on a preset name or a YAML path (None = defaults)."""
    return C.load_config(None if name_or_path is None else resolve(name_or_path), overrides)

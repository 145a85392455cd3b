"""Every leaf of the run config is read by the code that runs (DESIGN.md "Seams": every config
key is read somewhere); a key nothing reads is a setting that silently changes nothing.

How "read" is detected: statically, on the source of duel/, actors/, learner/ and launch/ without
duel/config.py (whose validation and YAML round trip touch every key generically). A leaf
`section.field` is read where an attribute chain `<...>.section.field` appears, or `alias.field`
where `alias = <...>.section` was assigned in the same module (`e = cfg.erm; e.hidden`); a
top-level leaf `field` is read where `cfg.field`, `config.field` or `<...>.cfg.field` appears.
A static search was chosen over a recording proxy because most keys are read inside Ray actors
and the loop (a proxy would have to run a whole experiment through Ray, and would miss the code
paths that run only on a GPU, several processes, async mode or a fault); its blind spot is a key
read only through getattr with a computed name, which the code does not do.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from duel.config import Config

ROOT = Path(__file__).resolve().parents[2]
CONFIG_NAMES = {"cfg", "config"}


def leaves(cls=Config, prefix="") -> list[str]:
    out = []
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            out += leaves(type(default), prefix + f.name + ".")
        else:
            out.append(prefix + f.name)
    return out


def sources() -> list[Path]:
    files = [p for d in ("duel", "actors", "learner", "launch") for p in (ROOT / d).rglob("*.py")]
    return [p for p in files if p != ROOT / "duel" / "config.py"]


def reads_in(tree: ast.AST, sections: dict[str, set[str]], top: set[str],
             full: dict[str, str] | None = None) -> set[str]:
    """Leaves read in `tree`; a section is named by its last part (`wandb` for logging.wandb),
    `full` maps that name back to its dotted path."""
    full = full or {}
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):  # alias = <...>.section
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Attribute) \
                and node.value.attr in sections:
            for t in node.targets:
                if isinstance(t, ast.Name):
                    aliases[t.id] = node.value.attr
    out = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        base = node.value
        if isinstance(base, ast.Attribute) and base.attr in sections and node.attr in sections[base.attr]:
            out.add(f"{full.get(base.attr, base.attr)}.{node.attr}")
        if isinstance(base, ast.Name) and base.id in aliases and node.attr in sections[aliases[base.id]]:
            out.add(f"{full.get(aliases[base.id], aliases[base.id])}.{node.attr}")
        is_cfg = (isinstance(base, ast.Name) and base.id in CONFIG_NAMES) or \
                 (isinstance(base, ast.Attribute) and base.attr in CONFIG_NAMES)
        if is_cfg and node.attr in top:
            out.add(node.attr)
    return out


def read_keys(files) -> set[str]:
    keys = leaves()
    sections: dict[str, set[str]] = {}
    full: dict[str, str] = {}  # a nested section's last part -> its dotted path
    for k in keys:
        if "." in k:
            path, f = k.rsplit(".", 1)
            name = path.rsplit(".", 1)[-1]
            assert full.setdefault(name, path) == path, f"two config sections named {name!r}"
            sections.setdefault(name, set()).add(f)
    top = {k for k in keys if "." not in k}
    out = set()
    for p in files:
        out |= reads_in(ast.parse(p.read_text(), str(p)), sections, top, full)
    return out


def test_every_config_leaf_is_read_somewhere():
    unread = sorted(set(leaves()) - read_keys(sources()))
    assert unread == [], f"config keys nothing reads (remove them or use them): {unread}"


def test_the_search_finds_reads_and_misses(tmp_path):
    assert {"seed", "erm.hidden", "oracle.options", "logging.progress"} <= set(leaves())
    code = tmp_path / "m.py"
    code.write_text("def f(cfg):\n    e = cfg.erm\n    return e.hidden, cfg.seed, self.cfg.loss.beta, x.seed\n")
    assert read_keys([code]) == {"erm.hidden", "seed", "loss.beta"}  # x.seed: not a config
    code.write_text("def f(cfg):\n    w = cfg.logging.wandb\n    return w.mode, cfg.logging.wandb.project\n")
    assert read_keys([code]) == {"logging.wandb.mode", "logging.wandb.project"}
    code.write_text("def f(cfg):\n    lc = cfg.policy.lora\n    return lc.rank, cfg.policy.lora.alpha\n")
    assert read_keys([code]) == {"policy.lora.rank", "policy.lora.alpha"}  # a nested section
    code.write_text("def f(task):\n    return task.seed, cfg.erm\n")
    assert read_keys([code]) == set()

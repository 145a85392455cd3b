"""`duel export RUN_DIR OUT_DIR [--force]`: never overwrites silently, never leaves a half export.

The run's restored learner is replaced by a tiny model (the end-to-end export of a real run is
tests/launch/test_cli.py::test_run_eval_export_end_to_end)."""

import os
import stat
from pathlib import Path
from types import SimpleNamespace

import pytest

from launch import cli
from learner import offline
from tests.helpers.tiny import tiny_model_dir


@pytest.fixture
def fake_run(tmp_path, monkeypatch):
    """restored_learner -> a tiny model with its tokenizer; returns the expected export files."""
    from duel.models import load_pretrained

    model_dir = tiny_model_dir(tmp_path / "policy")
    model, config = load_pretrained(model_dir)
    asked = []  # the `average` flag of each policy_model call (`duel export --average`)
    learner = SimpleNamespace(policy_model=lambda average=False: asked.append(average) or model,
                              model_config=config, model_dir=model_dir, asked=asked)
    monkeypatch.setattr(offline, "restored_learner", lambda run_dir: (learner, {}))
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text("")  # `duel export` checks it is there first
    old = os.umask(0o022)
    yield run
    os.umask(old)


def snapshot(path: Path) -> dict:
    """Every file and directory under `path` (or `path` itself): bytes and mode."""
    if path.is_file():
        return {".": (path.read_bytes(), path.stat().st_mode)}
    return {str(p.relative_to(path)): (p.read_bytes() if p.is_file() else None, p.stat().st_mode)
            for p in sorted(path.rglob("*"))}


def user_dir(path: Path) -> Path:
    path.mkdir()
    (path / "config.json").write_text('{"mine": true}\n')
    (path / "README.md").write_text("my notes\n")
    (path / "sub").mkdir()
    (path / "sub" / "keep.txt").write_text("x")
    return path


def test_export_writes_a_complete_readable_directory(fake_run, tmp_path):
    out = tmp_path / "new" / "export"
    assert cli.main(["export", str(fake_run), str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert "config.json" in names and "model.safetensors" in names and "tokenizer.json" in names
    for p in out.iterdir():  # readable by others, like any file written under umask 022
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    assert sorted(p.name for p in out.parent.iterdir()) == ["export"]  # no temp dir left
    # an existing empty directory is fine too
    (tmp_path / "empty").mkdir()
    assert cli.main(["export", str(fake_run), str(tmp_path / "empty")]) == 0
    assert snapshot(tmp_path / "empty") == snapshot(out)
    learner, _ = offline.restored_learner(fake_run)
    assert cli.main(["export", str(fake_run), str(tmp_path / "avg"), "--average"]) == 0
    assert learner.asked == [False, False, True]  # --average asks the learner for its average


def test_export_refuses_a_non_empty_directory_and_leaves_it_unchanged(fake_run, tmp_path, capsys):
    out = user_dir(tmp_path / "mine")
    before = snapshot(out)
    assert cli.main(["export", str(fake_run), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not empty (3 entries: README.md, config.json, sub)" in err, err
    assert "--force" in err
    assert snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "policy", "run"]


def test_export_refuses_a_file_path_in_one_line(fake_run, tmp_path, capsys):
    out = tmp_path / "file.bin"
    out.write_bytes(b"\x00\x01data")
    assert cli.main(["export", str(fake_run), str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"duel: error: {out}: exists and is not a directory; choose a new directory " \
                  "or pass --force to replace it\n"
    assert out.read_bytes() == b"\x00\x01data"


@pytest.mark.parametrize("kind", ["dir", "file"])
def test_export_force_replaces_everything(fake_run, tmp_path, kind):
    ref = tmp_path / "ref"
    assert cli.main(["export", str(fake_run), str(ref)]) == 0
    out = tmp_path / "target"
    if kind == "dir":
        user_dir(out)
    else:
        out.write_text("a file")
    assert cli.main(["export", str(fake_run), str(out), "--force"]) == 0
    assert snapshot(out) == snapshot(ref)  # the complete export and nothing of the old contents
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy", "ref", "run", "target"]


def test_a_failed_export_leaves_the_target_as_it_was(fake_run, tmp_path, monkeypatch):
    import duel.models

    def half_then_fail(model, config, out_dir):
        (Path(out_dir) / "config.json").write_text("{}")
        raise OSError("disk full")

    monkeypatch.setattr(duel.models, "save_pretrained", half_then_fail)
    out = user_dir(tmp_path / "mine")
    before = snapshot(out)
    assert cli.main(["export", str(fake_run), str(out), "--force"]) == 2
    assert snapshot(out) == before
    assert cli.main(["export", str(fake_run), str(tmp_path / "new")]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "policy", "run"]

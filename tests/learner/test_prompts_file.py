"""`data.train: FILE` (formerly `prompts: FILE`, still read with a deprecation warning) replaces
the task's training prompts: a tiny run (Ray, TinyTask) samples only the file's prompts (Parquet
here; JSONL in tests/launch/test_bad_input.py), config.yaml names the file, RUN_DIR/prompts.json records the digest of its rows, and a resume after the file changed
is refused before anything is written."""

import hashlib
import os

import pytest
import ray
import yaml

from duel.ledger import Ledger
from learner.loop import run_experiment
from learner.setup import RunDirError, prompts_digest
from tests.helpers.tiny import start_ray, tiny_config, tiny_model_dir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROWS = [{"id": f"file-{a}-{b}", "prompt": f"{a}+{b}="} for a, b in [(1, 2), (3, 4), (5, 6), (7, 8),
                                                                    (9, 10), (11, 12), (13, 14), (15, 16)]]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def ray_session():
    start_ray()
    yield
    ray.shutdown()


def write_parquet(rows, path):
    import datasets

    datasets.Dataset.from_list(rows).to_parquet(str(path))
    return str(path)


def snapshot(root):
    return {str(p.relative_to(root)): None if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*"))}


def test_a_run_learns_from_the_prompts_file_and_refuses_a_changed_one(tmp_path):
    model = tiny_model_dir(tmp_path / "policy")
    path = write_parquet(ROWS, tmp_path / "prompts.parquet")
    from duel.config import ConfigDeprecation

    with pytest.warns(ConfigDeprecation, match=r"key 'prompts' is deprecated; it is read as 'data.train'"):
        cfg = tiny_config(model, steps=2, prompts=path)  # the old key still works
    assert cfg.data.train == path
    run_dir = tmp_path / "run"
    res = run_experiment(cfg, run_dir)
    assert res["step"] == 2 and res["queries"] > 0
    # every paid query is about a prompt of the file (none of TinyTask's own "add-a-b" prompts)
    entries = Ledger(run_dir, readonly=True).entries()
    assert len(entries) == res["queries"]
    assert {e.prompt_id for e in entries} <= {r["id"] for r in ROWS}
    assert len({e.prompt_id for e in entries}) >= 4  # 2 steps x 4 prompts, one epoch of 8 rows
    # the run directory records the file and the digest of its rows
    written = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert written["data"]["train"] == path and "prompts" not in written
    assert yaml.safe_load((run_dir / "prompts.json").read_text()) == {
        "file": path, "rows": 8, "sha256": prompts_digest(ROWS)}
    # the same rows in another order: another prompt stream, so resuming is refused, nothing written
    write_parquet(ROWS[::-1], path)
    before = snapshot(run_dir)
    with pytest.raises(RunDirError, match=r"key 'data.train' \(.*prompts.parquet'\): the data changed "
                                          r"since this run started: .*prompts.json records 8 rows"):
        run_experiment(cfg, run_dir, resume=True)
    assert snapshot(run_dir) == before

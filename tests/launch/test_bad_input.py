"""Bad input (issue 8, invariant 5): each fails with a message naming the file, the key and what
was expected, before Ray starts, and leaves the run directory exactly as it was. An oracle
reply of the wrong shape stops the run with a clear message and records no label."""

import hashlib
import http.server
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import ray
import yaml

from duel import checkpoint
from duel.config import load_config, save_config, to_dict
from duel.data import load_prompts
from duel.ledger import Ledger, LedgerEntry
from duel.metrics import read_metrics
from launch import cli
from tests.helpers.tiny import TinyTask, tiny_config, tiny_model_dir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TASK = "tests.launch.test_bad_input:PromptsFileTask"


class PromptsFileTask(TinyTask):
    """TinyTask whose prompts come from the file named by $DUEL_TEST_PROMPTS."""

    name = "prompts_file"

    def make_prompts(self, rng):
        rows = load_prompts(os.environ["DUEL_TEST_PROMPTS"])
        return rows, [{"id": f"eval-{r['id']}", "prompt": r["prompt"]} for r in rows]


@pytest.fixture(autouse=True)
def env(monkeypatch, tmp_path):
    import tempfile

    base = tempfile.gettempdir()
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", os.path.join(base, "duel-test-jax-cache"))
    monkeypatch.setenv("DUEL_CACHE", os.path.join(base, "duel-test-cache"))
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"id": f"p{i}", "prompt": f"{i}+{i}="}) + "\n" for i in range(6)))
    monkeypatch.setenv("DUEL_TEST_PROMPTS", str(prompts))
    yield
    assert not ray.is_initialized() or ray.shutdown() is None


def snapshot(root: Path) -> dict:
    """Every path under root -> sha256 of its bytes (None for a directory)."""
    out = {}
    for p in sorted(root.rglob("*")):
        out[str(p.relative_to(root))] = None if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def stopped_run(tmp_path):
    """A run directory as a stopped run leaves it: config, checkpoint 2, ledger, metrics."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")  # only its presence is checked before Ray starts
    run_dir = tmp_path / "run"
    cfg = tiny_config(model, task=TASK, steps=4)
    save_config(cfg, run_dir / "config.yaml")
    checkpoint.save(run_dir, 2, {"w": np.arange(4.0)}, {"counters": {"step": 2, "queries": 1}})
    Ledger(run_dir).append([LedgerEntry(pair_id="s0-i0", prompt_id="p0", tokens_a=[3], tokens_b=[4],
                                        version=0, strategy="ee_ts", prob_a=0.25, label=0, step=0)])
    (run_dir / "metrics.jsonl").write_text(json.dumps({"kind": "train", "step": 1, "queries": 1}) + "\n")
    return run_dir


def edit_config(run_dir: Path, **changes):
    data = yaml.safe_load((run_dir / "config.yaml").read_text())
    for key, value in changes.items():
        node = data
        *parts, last = key.split(".")
        for p in parts:
            node = node[p]
        node[last] = value
    (run_dir / "config.yaml").write_text(yaml.safe_dump(data))


def fails(argv, capsys) -> str:
    capsys.readouterr()
    assert cli.main(argv) == 2
    assert not ray.is_initialized()  # failed before Ray started
    return capsys.readouterr().err


def test_mistyped_key_in_a_run_config(stopped_run, capsys):
    cfg_file = stopped_run / "config.yaml"
    data = yaml.safe_load(cfg_file.read_text())
    data["explore"]["stratgy"] = data["explore"].pop("strategy")
    cfg_file.write_text(yaml.safe_dump(data))
    before = snapshot(stopped_run)
    err = fails(["resume", str(stopped_run)], capsys)
    assert f"duel: error: {cfg_file}: unknown key 'explore.stratgy' (did you mean 'explore.strategy'?)" in err, err
    assert snapshot(stopped_run) == before


def test_unknown_key_in_a_new_config_file(tmp_path, capsys):
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"task": TASK, "stepz": 4}))
    err = fails(["run", str(path), "--run-dir", str(tmp_path / "new")], capsys)
    assert f"duel: error: {path}: unknown key 'stepz' (did you mean 'steps'?); valid keys in the top level: seed," in err, err
    assert not (tmp_path / "new").exists()


def test_missing_model_directory(stopped_run, tmp_path, capsys):
    gone = tmp_path / "deleted-model"
    edit_config(stopped_run, **{"policy.path": str(gone)})
    before = snapshot(stopped_run)
    err = fails(["resume", str(stopped_run)], capsys)
    assert (f"duel: error: {stopped_run / 'config.yaml'}: key 'policy.path': expected a Hugging Face "
            f"model directory (config.json and *.safetensors), got '{gone}' (it does not exist)") in err, err
    assert snapshot(stopped_run) == before


@pytest.mark.parametrize("row, expected", [
    ({"id": "x", "prompt": ""}, "line 4: key 'prompt' must be a non-empty string, got ''"),
    ({"id": "p1", "prompt": "7+7="}, "line 4: key 'id' value 'p1' repeats line 2 (prompt ids must be unique)"),
    ({"id": "x", "text": "7+7="}, "line 4: key 'prompt' is missing (expected a non-empty string)"),
])
def test_prompts_file_with_a_bad_row(stopped_run, capsys, row, expected):
    prompts = Path(os.environ["DUEL_TEST_PROMPTS"])
    lines = prompts.read_text().splitlines()
    lines[3] = json.dumps(row)
    prompts.write_text("\n".join(lines) + "\n")
    before = snapshot(stopped_run)
    err = fails(["resume", str(stopped_run)], capsys)
    assert (f"duel: error: {stopped_run / 'config.yaml'}: key 'task' ('{TASK}'): its training "
            f"prompts: {prompts}: {expected}") in err, err
    assert snapshot(stopped_run) == before
    # a new run with the same config fails the same way and writes nothing
    err = fails(["run", str(stopped_run / "config.yaml"), "--run-dir", str(stopped_run.parent / "new")], capsys)
    assert f"{prompts}: {expected}" in err
    assert not (stopped_run.parent / "new").exists()


def prompts_config(tmp_path, prompts, **over) -> Path:
    """A run config (TinyTask) whose training prompts come from the `data.train` file."""
    model = tmp_path / "model"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text("{}")  # only its presence is checked before Ray starts
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(to_dict(tiny_config(model, **{"data.train": str(prompts)}, **over))))
    return path


@pytest.mark.parametrize("row, expected", [
    ({"id": "x", "prompt": "  "}, "line 4: key 'prompt' must be a non-empty string or a list of messages, got '  '"),
    ({"id": "p1", "prompt": "7+7="}, "line 4: key 'id' value 'p1' repeats line 2 (prompt ids must be unique)"),
    ({"id": ["x"], "prompt": "7+7="}, "line 4: key 'id' must be a string or an integer, got ['x']"),
])
def test_prompts_key_file_with_a_bad_row(tmp_path, capsys, row, expected):
    prompts = tmp_path / "mine.jsonl"
    rows = [{"id": f"p{i}", "prompt": f"{i}+1="} for i in range(5)]
    rows[3] = row
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = prompts_config(tmp_path, prompts)
    err = fails(["run", str(path), "--run-dir", str(tmp_path / "new")], capsys)
    assert f"duel: error: {path}: key 'data.train': {prompts}: {expected}" in err, err
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("name, expected", [
    ("gone.jsonl", "prompts file not found"),
    ("prompts.csv", "expected a .jsonl, .json or .parquet prompts file, got '.csv'"),
    ("empty.jsonl", "cannot read it as json: no prompts (the file is empty)"),
    ("torn.jsonl", "cannot read it as json: line 4: expected one JSON object per line, got '{\"id\": \"p2\", \"pro'"),
])
def test_prompts_key_file_missing_or_unreadable(tmp_path, capsys, name, expected):
    prompts = tmp_path / name
    text = {"empty.jsonl": "", "prompts.csv": "id,prompt\np0,1+1=\n",
            "torn.jsonl": '{"id": "p0", "prompt": "1+1="}\n\n{"id": "p1", "prompt": "1+2="}\n{"id": "p2", "pro\n'}
    if name in text:
        prompts.write_text(text[name])
    path = prompts_config(tmp_path, prompts)
    err = fails(["run", str(path), "--run-dir", str(tmp_path / "new")], capsys)
    assert f"duel: error: {path}: key 'data.train': {prompts}: {expected}" in err, err
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("oracle", [{"kind": "task"}, {"kind": "rule", "options": {"tau": 0.5}}])
def test_prompts_the_task_cannot_grade_are_refused_before_ray_starts(tmp_path, capsys, oracle):
    """A prompt the task's gold reward cannot parse is bad input (file, line, reason), not an
    oracle outage found after Ray started; `duel sweep` refuses it the same way."""
    from launch import sweep

    prompts = tmp_path / "mine.jsonl"
    prompts.write_text('{"id": "a", "prompt": "1+2="}\n\n{"id": "b", "prompt": "hello world"}\n')
    path = prompts_config(tmp_path, prompts)
    data = yaml.safe_load(path.read_text())
    data["oracle"] = {**data["oracle"], **oracle}
    path.write_text(yaml.safe_dump(data))
    expected = (f"key 'data.train': {prompts}: line 3: task 'tiny_arithmetic' cannot grade this "
                f"prompt (oracle.kind '{oracle['kind']}' is its gold reward): expected a prompt "
                "like '17+25=', got 'hello world'")
    err = fails(["run", str(path), "--run-dir", str(tmp_path / "new")], capsys)
    assert err == f"duel: error: {path}: {expected}\n", err
    assert not (tmp_path / "new").exists()
    out = tmp_path / "sweep"
    assert sweep.main([str(path), "--strategies", "passive", "--seeds", "1", "--budget", "8",
                       "--out", str(out)], log=lambda _: None) == 2
    assert capsys.readouterr().err == f"duel sweep: error: {path}: {expected}\n"
    assert not ray.is_initialized() and not out.exists()
    # an oracle that is not the task's gold reward does not need the task to parse the prompt
    data["oracle"] = {"kind": "rule", "options": {"reward": "len_test"}}
    path.write_text(yaml.safe_dump(data))
    from learner.setup import task_prompts
    from duel.tasks import get_task

    cfg = load_config(path)
    assert [r["id"] for r in task_prompts(cfg, get_task(cfg.task))] == ["a", "b"]


def test_resume_with_a_changed_prompts_file_is_refused(tmp_path, capsys):
    from learner.setup import PROMPTS_RECORD, check_prompts_record

    prompts = tmp_path / "mine.jsonl"
    rows = [{"id": f"p{i}", "prompt": f"{i}+1="} for i in range(6)]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg_path = prompts_config(tmp_path, prompts, steps=4)
    run_dir = tmp_path / "run"
    cfg = load_config(cfg_path)
    save_config(cfg, run_dir / "config.yaml")  # a run stopped at step 2, as it left its directory
    checkpoint.save(run_dir, 2, {"w": np.arange(4.0)}, {"counters": {"step": 2, "queries": 0}})
    record = check_prompts_record(cfg, run_dir, load_prompts(prompts))
    (run_dir / PROMPTS_RECORD).write_text(json.dumps(record))
    assert record["rows"] == 6
    # the same rows written with another key order: same digest, the resume may go on
    prompts.write_text("".join(json.dumps({"prompt": r["prompt"], "id": r["id"]}) + "\n" for r in rows))
    assert check_prompts_record(cfg, run_dir, load_prompts(prompts)) is None
    # one prompt edited: refused before Ray starts, the run directory untouched
    rows[2]["prompt"] = "2+2="
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = snapshot(run_dir)
    err = fails(["resume", str(run_dir)], capsys)
    assert (f"duel: error: key 'data.train' ('{prompts}'): the data changed since this run started: "
            f"{run_dir / PROMPTS_RECORD} records 6 rows with sha256 {record['sha256'][:16]}..., the data "
            "now gives 6 rows with sha256 ") in err, err
    assert "restore the data or start a new run" in err
    assert snapshot(run_dir) == before


class UngradableTask(TinyTask):
    """TinyTask whose gold reward cannot grade its prompts (and no check_prompt says so)."""

    name = "ungradable"

    def check_prompt(self, prompt):
        return None

    def gold_reward(self, prompt, response):
        raise ValueError(f"ungradable: cannot grade {prompt!r}")


def test_a_stop_that_a_resume_cannot_fix_suggests_no_resume(tmp_path, capsys):
    """The task oracle raises ValueError on the prompts: the run stops (checkpoint, ledger) but
    says why a resume cannot help, suggests none and exits 1; `duel resume` fails the same way."""
    model = tiny_model_dir(tmp_path / "policy")
    cfg = tiny_config(model, steps=3, task="tests.launch.test_bad_input:UngradableTask", **{
        "resources.generators": 1, "oracle.max_retries": 1, "eval.num_prompts": 4})
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
    run_dir = tmp_path / "run"
    capsys.readouterr()
    assert cli.main(["run", str(tmp_path / "run.yaml"), "--run-dir", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert "duel: stopped: oracle failed: task oracle" in err, err
    assert "last error: ValueError: ungradable: cannot grade" in err, err
    assert ("Not an outage: the oracle (oracle.kind 'task') is a function of the prompt and the "
            "response, and ValueError means it cannot grade these pairs") in err, err
    assert "resume with" not in err and "duel resume" not in err, err
    assert checkpoint.all_steps(run_dir)  # it stopped cleanly all the same
    assert cli.main(["resume", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert "duel: stopped: oracle failed" in err and "duel resume" not in err, err


class WrongShape(http.server.BaseHTTPRequestHandler):
    """A remote oracle that answers one probability too few."""

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reply = json.dumps({"prob_a": [0.5] * (len(body["pairs"]) - 1)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_oracle_reply_of_the_wrong_shape_stops_the_run_and_records_no_label(tmp_path, capsys):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), WrongShape)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/label"
    try:
        model = tiny_model_dir(tmp_path / "policy")
        cfg = tiny_config(model, steps=2, **{
            "resources.generators": 1, "oracle.kind": "remote", "oracle.max_retries": 1,
            "oracle.options": {"url": url, "backoff_s": 0.0}})
        (tmp_path / "remote.yaml").write_text(yaml.safe_dump(to_dict(cfg)))
        run_dir = tmp_path / "run"
        capsys.readouterr()
        assert cli.main(["run", str(tmp_path / "remote.yaml"), "--run-dir", str(run_dir)]) == 3
        err = capsys.readouterr().err
    finally:
        server.shutdown()
    # one retry budget: the request is sent twice in all, not 2 x 2 times (the pool counts the
    # HTTP client's attempts)
    assert (f"duel: stopped: oracle unavailable: remote oracle (url '{url}') failed 2 times in a row "
            "on pairs 0..3, past its retry budget (oracle.max_retries = 1); last error: OracleError: "
            f"{url}: no valid answer after 2 attempts (1 retries)") in err, err
    assert "'prob_a' must be a list of 4 numbers, got 3" in err
    # no label was recorded and no step was learned; the stopped run can be resumed
    assert len(Ledger(run_dir, readonly=True)) == 0
    assert read_metrics(run_dir, "train") == []
    assert checkpoint.all_steps(run_dir) == [0]


def test_a_lora_target_the_family_lacks_fails_before_ray_starts(tmp_path, capsys):
    from duel.models import ModelConfig, build_model, save_pretrained

    c = ModelConfig(family="gpt_neox", vocab_size=32, hidden_size=16, num_layers=1, num_heads=4, num_kv_heads=4,
                    head_dim=4, intermediate_size=24, max_position_embeddings=64, rotary_dim=2,
                    architecture="GPTNeoXForCausalLM")
    model_dir = tmp_path / "neox"
    save_pretrained(build_model(c), c, model_dir)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump({"task": TASK, "policy": {"path": str(model_dir),
                                                             "lora": {"rank": 4, "targets": ["q", "o"]}}}))
    err = fails(["run", str(path), "--run-dir", str(tmp_path / "new")], capsys)
    assert (f"duel: error: {path}: key 'policy.lora.targets': LoRA target 'q' does not exist in a gpt_neox "
            "model (GPT-NeoX fuses q, k, v into one projection); targets it has: o, up, down") in err, err
    assert not (tmp_path / "new").exists()

"""A run from data and config alone (issue 15), end to end through the CLI on CPU: a tiny random
Llama policy and a tiny random LlamaForSequenceClassification reward model (its own tokenizer and
chat template), both saved by `transformers`; a 200-row train file and a 64-row eval file with
references, as JSONL and as a save_to_disk directory. `duel run` is killed after step 2, `duel
resume` finishes it, `duel eval` and `duel export` read it; bad data fails with one line before
Ray starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import ray
import yaml

from launch import cli
from tests.helpers.tiny import ROOT, SYMBOLS

pytestmark = pytest.mark.slow

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(autouse=True)
def env(monkeypatch):
    import tempfile

    base = tempfile.gettempdir()
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", os.path.join(base, "duel-test-jax-cache"))
    monkeypatch.setenv("DUEL_CACHE", os.path.join(base, "duel-test-cache"))
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("WANDB_SILENT", "true")
    yield
    assert not ray.is_initialized() or ray.shutdown() is None


def hf_dir(out, symbols, *, reward: bool, chat_template: str | None = None, seed: int = 0):
    """A tiny random Llama saved by transformers, with a char tokenizer over `symbols`."""
    from duel.tasks.tokenizer import build_tokenizer, save_tokenizer

    tok = build_tokenizer(symbols, level="char")
    save_tokenizer(tok, out)
    if chat_template:
        p = out / "tokenizer_config.json"
        p.write_text(json.dumps({**json.loads(p.read_text()), "chat_template": chat_template}))
    cfg = transformers.LlamaConfig(vocab_size=tok.get_vocab_size(), hidden_size=16, intermediate_size=32,
                                   num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                   max_position_embeddings=128, pad_token_id=0, bos_token_id=1,
                                   eos_token_id=2, tie_word_embeddings=False, num_labels=1)
    torch.manual_seed(seed)
    model = (transformers.LlamaForSequenceClassification if reward else transformers.LlamaForCausalLM)(cfg)
    if reward:
        with torch.no_grad():
            model.score.weight.normal_(0, 1.0)  # distinct scores: labels that mean something
    model.save_pretrained(out, safe_serialization=True)
    return str(out)


RM_TEMPLATE = ("{% for m in messages %}{{ '|' if m['role'] == 'user' else '>' }}{{ m['content'] }}"
               "{% endfor %}")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    policy = hf_dir(root / "policy", SYMBOLS, reward=False)
    # the reward model's tokenizer is its own: another vocabulary order, and a chat template
    rm = hf_dir(root / "rm", list("|>") + SYMBOLS[::-1], reward=True, chat_template=RM_TEMPLATE, seed=1)
    return policy, rm


def data_rows():
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, 50, size=(264, 2))
    rows = [{"id": f"q{i}", "prompt": f"{a}+{b}=", "reference": str(a + b)} for i, (a, b) in enumerate(pairs)]
    return [{"id": r["id"], "prompt": r["prompt"]} for r in rows[:200]], rows[200:]


def write_config(tmp_path, policy, rm, data: dict, **over) -> str:
    cfg = {"policy": {"path": policy}, "data": data, "steps": 3, "prompts_per_step": 4, "candidates": 4,
           "sampling": {"max_new_tokens": 4}, "erm": {"num_members": 4, "hidden": [8], "steps_per_update": 1},
           "optim": {"lr": 1e-2}, "oracle": {"kind": "reward_model", "options": {"path": rm, "batch_size": 8}},
           "eval": {"every": 0, "num_prompts": 8, "samples": 2}, "checkpoint": {"every": 1},
           "resources": {"generators": 1}, "logging": {"tensorboard": False, "progress": False}, **over}
    path = tmp_path / "data.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


KILLED_CLI = textwrap.dedent("""
    import os, signal, sys
    import learner.loop as loop_module

    run = loop_module.run_experiment

    def killed_after_step_2(*args, **kwargs):
        kill = lambda loop, step: step == 2 and os.kill(os.getpid(), signal.SIGKILL)
        return run(*args, **{**kwargs, "hooks": {"after_step": kill}})

    loop_module.run_experiment = killed_after_step_2
    from launch import cli
    sys.exit(cli.main(sys.argv[1:]))
""")


def test_run_from_data_killed_resumed_evaluated_exported(tmp_path, models, capsys):
    from duel.ledger import Ledger
    from duel.metrics import read_metrics

    policy, rm = models
    train, evals = data_rows()
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in evals))
    path = write_config(tmp_path, policy, rm, {"train": str(tmp_path / "train.jsonl"),
                                               "eval": str(tmp_path / "eval.jsonl")},
                        logging={"tensorboard": False, "progress": False,
                                 "wandb": {"project": "duel-test", "mode": "offline"}})
    run_dir = tmp_path / "run"
    # the driver gets its own W&B service, as a driver started from a shell has: WANDB_SERVICE
    # names the service of this test process when an earlier test used W&B in it, and a run id
    # the SIGKILLed driver opened there would stay "in use" for the resume below
    env = {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_CLI, "run", path, "--run-dir", str(run_dir)],
                            cwd=ROOT, env={**env, "PYTHONPATH": ROOT}, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    from tests.helpers.hang import HANG_TIMEOUT_S

    try:
        out, _ = proc.communicate(timeout=HANG_TIMEOUT_S)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert proc.returncode == -signal.SIGKILL, out[-3000:]
    assert [r["step"] for r in read_metrics(run_dir, "train")] == [1, 2]
    record = json.loads((run_dir / "prompts.json").read_text())
    assert (record["rows"], record["eval_rows"]) == (200, 64)

    capsys.readouterr()
    assert cli.main(["resume", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "steps: 3  queries: 12" in out, out
    entries = Ledger(run_dir, readonly=True).entries()
    assert len(entries) == 12  # the ledger rows equal the queries: none lost, none paid twice
    assert {e.prompt_id for e in entries} <= {r["id"] for r in train}
    assert all(0.0 <= e.prob_a <= 1.0 for e in entries)
    # the final eval row: win rates against the references of the eval file, judged by the RM
    ev = read_metrics(run_dir, "eval")[-1]
    assert ev["step"] == 3 and ev["n"] == 8 and "well_formed" not in ev  # no task, no task rule
    for k in ("win_rate", "start_win_rate", "win_rate_vs_start", "expected_win_rate", "start_expected_win_rate"):
        assert 0.0 <= ev[k] <= 1.0, (k, ev)
    # the oracle reads (prompt, response) with the reward model's own tokenizer and chat template
    from duel.oracles import make_oracle
    from duel.tasks.tokenizer import load_tokenizer

    oracle = make_oracle({"kind": "reward_model", "path": rm})
    oracle._load()
    ids = oracle.encode("1+2=", "3")
    assert ids[-7:] == load_tokenizer(rm).encode("|1+2=>3", add_special_tokens=False)
    assert ids[-7:] != load_tokenizer(policy).encode("|1+2=>3", add_special_tokens=False)

    # W&B (offline): the killed and the resumed process logged to one W&B run; every row the
    # resumed process wrote to metrics.jsonl is in its history, and every history row is one of
    # metrics.jsonl (a SIGKILLed driver may lose its last rows to W&B's own buffering)
    from tests.duel.test_tracking import as_wandb, history

    rows, _, ids = history(run_dir)
    assert ids == {json.loads((run_dir / "wandb.json").read_text())["id"]}
    assert len(list(run_dir.glob("wandb/offline-run-*"))) == 2
    plots = [r for r in rows if any(k.startswith("report/") for k in r)]  # the report plot, at the end
    assert len(plots) == 1 and any(k.endswith("/format") and v == "png" for k, v in plots[0].items())
    logged = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows if r not in plots]
    expected = [as_wandb(m) for m in read_metrics(run_dir)]
    assert [r for r in expected if r["step"] == 3] == [r for r in logged if r["step"] == 3]
    assert len([r for r in expected if r["step"] == 3]) == 2  # train and eval
    assert all(r in expected for r in logged), (logged, expected)

    assert cli.main(["eval", str(run_dir)]) == 0
    assert "step 3: win rate against the starting policy" in capsys.readouterr().out
    out_dir = tmp_path / "export"
    assert cli.main(["export", str(run_dir), str(out_dir)]) == 0
    hf = transformers.AutoModelForCausalLM.from_pretrained(out_dir)
    assert hf.config.vocab_size == transformers.AutoConfig.from_pretrained(policy).vocab_size

    # the same data as a save_to_disk DatasetDict (eval rows from its "test" split): same prompts
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_list(train),
                          "test": datasets.Dataset.from_list(evals)}).save_to_disk(str(tmp_path / "dd"))
    path2 = write_config(tmp_path, policy, rm, {"train": str(tmp_path / "dd")}, steps=1)
    assert cli.main(["run", path2, "--run-dir", str(tmp_path / "run2")]) == 0
    assert "steps: 1  queries: 4" in capsys.readouterr().out
    entries2 = Ledger(tmp_path / "run2", readonly=True).entries()
    assert [e.prompt_id for e in entries2] == [e.prompt_id for e in entries[:4]]  # same ids, same stream
    assert read_metrics(tmp_path / "run2", "eval")[-1]["n"] == 8


@pytest.mark.parametrize("case, expected", [
    ("no_reference_column", "key 'data.eval': {eval}: line 1: missing key 'reference' (data.reference_key; "
                            "columns: ['id', 'prompt'])"),
    ("empty_file", "key 'data.eval': {eval}: cannot read it as json: no prompts (the file is empty)"),
    ("bad_role", "key 'data.eval': {eval}: line 3: key 'prompt': message 0 has role 'bot'; expected one of "
                 "system, user, assistant, tool"),
    ("reference_not_a_string", "key 'data.eval': {eval}: line 2: key 'reference' must be a non-empty string "
                               "(the reference response), got 7"),
    ("no_such_split", "key 'data.train': {dd}: no split 'test' in this DatasetDict (its splits: train); set "
                      "'data.eval_split' to one of them"),
    ("neither", "the config has no 'task' and no 'data.train': set 'task'"),
])
def test_bad_data_fails_with_one_line_before_ray_starts(tmp_path, models, capsys, case, expected):
    import datasets

    policy, rm = models
    train, evals = data_rows()
    ev = tmp_path / "eval.jsonl"
    rows = [dict(r) for r in evals[:4]]
    if case == "no_reference_column":
        rows = [{"id": r["id"], "prompt": r["prompt"]} for r in rows]
    if case == "bad_role":
        rows[2]["prompt"] = [{"role": "bot", "content": "1+1="}]
    if case == "reference_not_a_string":
        rows[1]["reference"] = 7
    ev.write_text("" if case == "empty_file" else "".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in train))
    data = {"train": str(tmp_path / "train.jsonl"), "eval": str(ev)}
    if case == "no_such_split":
        datasets.DatasetDict({"train": datasets.Dataset.from_list(train)}).save_to_disk(str(tmp_path / "dd"))
        data = {"train": str(tmp_path / "dd")}
    if case == "neither":
        data = {}
    path = write_config(tmp_path, policy, rm, data)
    capsys.readouterr()
    assert cli.main(["run", path, "--run-dir", str(tmp_path / "new")]) == 2
    err = capsys.readouterr().err
    line = f"duel: error: {path}: {expected.format(eval=ev, dd=tmp_path / 'dd')}"
    assert err.count("\n") == 1 and err.startswith(line), err  # one line, naming file, row and key
    if case != "neither":
        assert err == line + "\n", err
    assert not ray.is_initialized() and not (tmp_path / "new").exists()

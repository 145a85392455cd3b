"""reward_model oracle: duel's JAX backbone scores equal transformers' LlamaForSequenceClassification."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

pytestmark = pytest.mark.slow  # torch + transformers import and jit: ~30 s on 2 shared cores

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from duel.oracles import make_oracle  # noqa: E402
from duel.tasks.tokenizer import build_tokenizer, save_tokenizer  # noqa: E402


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("rm")
    tok = build_tokenizer(list("abcdefgh =+0123456789"), level="char")
    save_tokenizer(tok, out)
    cfg = transformers.LlamaConfig(
        vocab_size=32, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, num_labels=1, pad_token_id=0, bos_token_id=1,
        eos_token_id=2, tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForSequenceClassification(cfg).eval()
    with torch.no_grad():  # score heads start near zero; make the scores clearly different
        model.score.weight.normal_(0, 1.0)
    model.save_pretrained(out, safe_serialization=True)
    return out, model


def torch_scores(model, tok_dir, texts):
    t = transformers.AutoTokenizer.from_pretrained(str(tok_dir))
    out = []
    for text in texts:
        ids = torch.tensor([t(text)["input_ids"]])
        with torch.no_grad():
            out.append(float(model(input_ids=ids).logits[0, 0]))
    return np.array(out)


def test_reward_model_scores_match_transformers(rm_dir):
    path, model = rm_dir
    prompts = ["1+2=", "12+30=", "7+7=", "abc"]
    a = ["3", "42", "14", "defgh ha"]
    b = ["4", "4", "15", "d"]
    tau = 0.5
    oracle = make_oracle({"kind": "reward_model", "path": str(path), "tau": tau, "batch_size": 3})
    res = oracle.label(prompts, a, b)
    ra = np.array([m["reward_a"] for m in res.metadata])
    rb = np.array([m["reward_b"] for m in res.metadata])
    ta = torch_scores(model, path, [p + x for p, x in zip(prompts, a)])
    tb = torch_scores(model, path, [p + x for p, x in zip(prompts, b)])
    assert np.abs(ta - tb).max() > 0.05  # the scores differ, so the comparison means something
    np.testing.assert_allclose(ra, ta, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(rb, tb, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(res.prob_a, 1 / (1 + np.exp(-(ta - tb) / tau)), atol=1e-4)
    # pickles without the loaded model, and the copy reloads to the same answer
    clone = pickle.loads(pickle.dumps(oracle))
    assert clone._model is None
    np.testing.assert_allclose(clone.label(prompts, a, b).prob_a, res.prob_a, atol=1e-6)


def test_reward_model_truncation_keeps_the_end(rm_dir):
    path, model = rm_dir
    oracle = make_oracle({"kind": "reward_model", "path": str(path), "max_length": 6})
    res = oracle.label(["12345678+"], ["1"], ["2"])
    assert res.metadata[0]["truncated"]
    t = transformers.AutoTokenizer.from_pretrained(str(path))
    ids = t("12345678+1")["input_ids"][-6:]
    with torch.no_grad():
        expect = float(model(input_ids=torch.tensor([ids])).logits[0, 0])
    assert res.metadata[0]["reward_a"] == pytest.approx(expect, abs=1e-4)


def test_reward_model_bad_path(tmp_path):
    with pytest.raises(ValueError, match="'path'.*config.json"):
        make_oracle({"kind": "reward_model", "path": str(tmp_path)})


def test_reward_model_bfloat16_one_load_and_its_own_chat_template(rm_dir, tmp_path):
    """dtype bfloat16 scores within bf16 precision of float32; concurrent calls of one oracle
    load the weights once; a chat template in the reward model's directory is the one used."""
    import json
    import shutil
    import threading

    path, _ = rm_dir
    prompts, a, b = ["1+2=", "12+30=", "7+7="], ["3", "42", "14"], ["4", "4", "15"]
    f32 = make_oracle({"kind": "reward_model", "path": str(path), "batch_size": 4})
    bf16 = make_oracle({"kind": "reward_model", "path": str(path), "batch_size": 4, "dtype": "bfloat16"})
    r32 = np.array([m["reward_a"] for m in f32.label(prompts, a, b).metadata])
    threads = [threading.Thread(target=bf16.label, args=(prompts, a, b)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bf16.loads == 1 and f32.loads == 1
    r16 = np.array([m["reward_a"] for m in bf16.label(prompts, a, b).metadata])
    assert not np.array_equal(r16, r32)  # it does compute in bfloat16
    np.testing.assert_allclose(r16, r32, atol=0.05 * np.abs(r32).max() + 0.02)
    with pytest.raises(ValueError, match="key 'dtype' must be one of float32, bfloat16"):
        make_oracle({"kind": "reward_model", "path": str(path), "dtype": "float16"})
    # its own chat template: "|" before the prompt, ">" before the response
    own = tmp_path / "rm"
    shutil.copytree(path, own)
    cfg = json.loads((own / "tokenizer_config.json").read_text())
    cfg["chat_template"] = "{% for m in messages %}{{ m['content'] }}{% if loop.first %}={% endif %}{% endfor %}"
    (own / "tokenizer_config.json").write_text(json.dumps(cfg))
    templated = make_oracle({"kind": "reward_model", "path": str(own)})
    plain = make_oracle({"kind": "reward_model", "path": str(path)})
    templated._load(), plain._load()
    assert templated.encode("1+2", "3")[-5:] == plain.encode("1+2=", "3")[-5:]

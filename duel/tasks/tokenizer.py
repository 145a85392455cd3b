"""Small tokenizers for the shipped tasks, saved in Hugging Face format, and a torch-free loader.

`build_tokenizer(words, level)` makes a `tokenizers` WordLevel tokenizer: level "char" splits
every character (digits, symbols, spaces) and decodes by concatenation; level "word" splits on
whitespace and decodes by joining with one space. Special tokens: <pad>=0, <s>=1, </s>=2,
<unk>=3; encoding with special tokens prepends <s>.

`save_tokenizer(tok, out_dir)` writes tokenizer.json, tokenizer_config.json and
special_tokens_map.json, which `transformers.AutoTokenizer` loads as a PreTrainedTokenizerFast.
`load_tokenizer(dir)` reads the same files without importing transformers (which pulls in
torch): a `Tokenizer` with the subset of the Hugging Face API duel uses (`__call__`, `encode`,
`decode`, `batch_decode`, special token ids, `apply_chat_template` via jinja2). It is duel's one
tokenizer loader, for any model directory with a tokenizer.json (policies, encoders, reward
models alike); it lives here because tasks import duel.models, never the other way round.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from tokenizers import Regex, decoders, models, pre_tokenizers, processors
from tokenizers import Tokenizer as _Tok

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
PAD, BOS, EOS, UNK = SPECIALS


def build_tokenizer(symbols: Sequence[str], level: str = "word") -> _Tok:
    """WordLevel tokenizer over SPECIALS + symbols (characters for level "char", words for "word")."""
    vocab = {s: i for i, s in enumerate(SPECIALS)}
    for s in symbols:
        if s not in vocab:
            vocab[s] = len(vocab)
    tok = _Tok(models.WordLevel(vocab, unk_token=UNK))
    if level == "char":
        tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
        tok.decoder = decoders.Fuse()
    elif level == "word":
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    else:
        raise ValueError(f"tokenizer level must be 'char' or 'word', got {level!r}")
    tok.add_special_tokens(list(SPECIALS))
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    return tok


def save_tokenizer(tok: _Tok, out_dir, chat_template: str | None = None, model_max_length: int = 512) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    specials = {"pad_token": PAD, "bos_token": BOS, "eos_token": EOS, "unk_token": UNK}
    cfg = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": model_max_length,
        "padding_side": "left",
        "clean_up_tokenization_spaces": False,
        **specials,
    }
    if chat_template:
        cfg["chat_template"] = chat_template
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2))
    (out / "special_tokens_map.json").write_text(json.dumps(specials, indent=2))


class Tokenizer:
    """The Hugging Face tokenizer API subset duel uses, over a `tokenizers.Tokenizer`."""

    def __init__(self, tok: _Tok, config: dict | None = None):
        self._tok = tok
        cfg = config or {}
        self.chat_template: str | None = cfg.get("chat_template")
        self.model_max_length = cfg.get("model_max_length", 512)

        def special(name, default):
            t = cfg.get(name, default)
            if isinstance(t, dict):  # AddedToken serialised as a dict
                t = t.get("content")
            return t, (tok.token_to_id(t) if t is not None else None)

        self.pad_token, self.pad_token_id = special("pad_token", PAD)
        self.bos_token, self.bos_token_id = special("bos_token", BOS)
        self.eos_token, self.eos_token_id = special("eos_token", EOS)
        self.unk_token, self.unk_token_id = special("unk_token", UNK)
        if self.pad_token_id is None:
            self.pad_token_id = self.eos_token_id if self.eos_token_id is not None else 0

    @classmethod
    def from_pretrained(cls, path) -> "Tokenizer":
        return load_tokenizer(path)

    def save_pretrained(self, out_dir) -> None:
        save_tokenizer(self._tok, out_dir, self.chat_template, self.model_max_length)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return self._tok.encode(text, add_special_tokens=add_special_tokens).ids

    def __call__(self, text, add_special_tokens: bool = True):
        if isinstance(text, str):
            ids = self.encode(text, add_special_tokens)
            return {"input_ids": ids, "attention_mask": [1] * len(ids)}
        ids = [self.encode(t, add_special_tokens) for t in text]
        return {"input_ids": ids, "attention_mask": [[1] * len(x) for x in ids]}

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=skip_special_tokens)

    def batch_decode(self, seqs, skip_special_tokens: bool = True) -> list[str]:
        return [self.decode(s, skip_special_tokens) for s in seqs]

    def convert_tokens_to_ids(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def apply_chat_template(self, messages, add_generation_prompt: bool = False, tokenize: bool = True):
        if not self.chat_template:
            raise ValueError("this tokenizer has no chat_template (tokenizer_config.json key 'chat_template')")
        import jinja2

        env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
        text = env.from_string(self.chat_template).render(
            messages=messages, add_generation_prompt=add_generation_prompt,
            bos_token=self.bos_token or "", eos_token=self.eos_token or "",
        )
        return self.encode(text, add_special_tokens=False) if tokenize else text


def load_tokenizer(path) -> Tokenizer:
    """Read tokenizer.json (+ tokenizer_config.json) from a Hugging Face directory, no torch."""
    p = Path(path)
    f = p / "tokenizer.json"
    if not f.is_file():
        raise FileNotFoundError(f"{p}: expected tokenizer.json (a fast tokenizer) in the model directory")
    cfg = {}
    if (p / "tokenizer_config.json").is_file():
        cfg = json.loads((p / "tokenizer_config.json").read_text())
    if (p / "chat_template.jinja").is_file() and "chat_template" not in cfg:
        cfg["chat_template"] = (p / "chat_template.jinja").read_text()
    return Tokenizer(_Tok.from_file(str(f)), cfg)

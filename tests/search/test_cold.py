"""Cold start: lazy imports, text-only encoder, unchanged fingerprint, digest cache, cold bench."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from ctsearch.models import CTCLIP, load_checkpoint, official_config, to_official
from ctsearch.models.text import load_tokenizer, tokenize
from ctsearch.search import encoder as encoder_module
from ctsearch.search.encoder import Encoder, checkpoint_digest, digest_cache_file

TEXTS = ["Pleural effusion.", "Cardiomegaly with pericardial effusion.", "Emphysema."]
HEAVY = ("torch", "pyarrow", "duckdb", "transformers", "nibabel")


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> dict:
    """The tiny bench model (own format), a synthetic index 'cold' of it, an official file."""
    from ctsearch.bench.query import _model, synthetic_index

    root = tmp_path_factory.mktemp("cold")
    ckpt = _model(root / "model", "tiny")
    synthetic_index(root / "home", "cold", ckpt, 40)
    cfg = official_config(ctvit=dict(dim=16, codebook_size=8, image_size=40, patch_size=20,
                                     temporal_patch_size=10, spatial_depth=1, temporal_depth=1,
                                     dim_head=8, heads=2), ctclip=dict(dim_latent=8),
                          bert=dict(vocab_size=50, hidden_size=64, num_hidden_layers=1,
                                    num_attention_heads=1, intermediate_size=32,
                                    max_position_embeddings=16))
    cfg.vision.depth_size = 20
    model = CTCLIP(cfg)
    official = root / "model" / "official.pt"
    torch.save(to_official(model.state_dict(), model.cfg, position_ids=True), official)
    return {"home": root / "home", "ckpt": ckpt, "official": official}


def _forbid_vision(monkeypatch) -> None:
    def boom(*args, **kwargs):
        raise AssertionError("the vision tower was built")

    monkeypatch.setattr("ctsearch.models.clip.CTViT", boom)


def _old_fingerprint_id(path: Path, tokenizer=None) -> str:
    """The id as computed before lazy loading: the whole model built, then its config."""
    config = load_checkpoint(path).cfg.to_dict()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    blob = json.dumps({"sha256": digest, "config": config}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _imported(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", f"{code}\nimport sys\n"
                          f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"],
                         capture_output=True, text=True, check=True).stdout.strip()
    return [m for m in out.split(",") if m]


def test_import_ctsearch_search_loads_no_heavy_module():
    assert _imported("import ctsearch.search") == []
    assert _imported("from ctsearch.search import QueryError, IndexMismatch") == []


def test_public_names_of_ctsearch_search_resolve():
    import ctsearch.search as search

    assert all(getattr(search, name) is not None for name in search.__all__)
    assert search.Encoder is Encoder and "Searcher" in dir(search)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        search.nope  # noqa: B018


def test_cli_help_does_not_import_torch():
    assert "torch" not in _imported("import ctsearch.cli.main")


def test_text_encoder_never_builds_the_vision_tower(home, monkeypatch):
    full = load_checkpoint(home["ckpt"])
    tok = load_tokenizer(home["ckpt"].parent / "tokenizer")
    enc_ids = tokenize(tok, TEXTS, full.cfg.text.max_length, padding="longest")
    with torch.no_grad():
        ref = full.encode_text(enc_ids["input_ids"], enc_ids["attention_mask"]).numpy()
    expected_id = _old_fingerprint_id(home["ckpt"])
    _forbid_vision(monkeypatch)
    enc = Encoder.load(home["ckpt"], device="cpu")
    assert enc.parts == frozenset()
    np.testing.assert_array_equal(enc.encode_text(TEXTS), ref)
    assert enc.parts == {"text"} and enc.logit_scale == float(full.logit_scale.detach())
    assert enc.fingerprint()["id"] == expected_id


@pytest.mark.parametrize("name", ["ckpt", "official"])
def test_fingerprint_is_the_old_one_without_building_the_model(home, name, monkeypatch):
    expected = _old_fingerprint_id(home[name])
    _forbid_vision(monkeypatch)
    monkeypatch.setattr("ctsearch.models.clip.build_text_encoder", lambda *a: 1 / 0)
    enc = Encoder.load(home[name], home["ckpt"].parent / "tokenizer", device="cpu")
    fp = enc.fingerprint()
    assert fp["id"] == expected and fp["sha256"] == checkpoint_digest(home[name])
    assert enc.parts == frozenset() and enc.dim == enc.cfg.clip.dim_latent


def test_text_query_and_detect_through_the_searcher_skip_the_vision_tower(home, monkeypatch):
    from ctsearch.search import Searcher
    from ctsearch.search.zeroshot import detect

    full = Searcher("cold", home["home"], device="cpu")
    full.encoder.model  # noqa: B018 - every tower built: the old behaviour
    want_hits = full.query(report=TEXTS[0], k=5)
    want_probs = detect(full, like=full.rows[3]["volume"])
    _forbid_vision(monkeypatch)
    lazy = Searcher("cold", home["home"], device="cpu")
    assert lazy.query(report=TEXTS[0], k=5) == want_hits
    assert detect(lazy, like=full.rows[3]["volume"]).equals(want_probs)
    assert lazy.encoder.parts == {"text"}


def test_digest_cache_remembers_big_files_by_path_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(encoder_module, "DIGEST_CACHE_MIN_BYTES", 4)
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"weights v1")
    v1 = hashlib.sha256(b"weights v1").hexdigest()
    assert checkpoint_digest(ckpt) == v1
    assert digest_cache_file() == tmp_path / "cache" / "ctsearch" / "digests.json"
    stored = json.loads(digest_cache_file().read_text())
    assert stored[str(ckpt.resolve())]["sha256"] == v1
    hashed = []
    real = encoder_module.file_digest
    monkeypatch.setattr(encoder_module, "file_digest", lambda p: hashed.append(p) or real(p))
    assert checkpoint_digest(ckpt) == v1 and hashed == []  # remembered
    ckpt.write_bytes(b"weights v2")
    os.utime(ckpt, ns=(10**18, 10**18))
    assert checkpoint_digest(ckpt) == hashlib.sha256(b"weights v2").hexdigest()
    assert hashed == [ckpt]
    digest_cache_file().write_text("{damaged")
    assert checkpoint_digest(ckpt) == hashlib.sha256(b"weights v2").hexdigest()
    assert json.loads(digest_cache_file().read_text())[str(ckpt.resolve())]["sha256"] == (
        hashlib.sha256(b"weights v2").hexdigest())


def test_small_files_are_hashed_without_touching_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "m.pt").write_bytes(b"tiny")
    assert checkpoint_digest(tmp_path / "m.pt") == hashlib.sha256(b"tiny").hexdigest()
    assert not (tmp_path / "cache").exists()


def test_coldstart_bench_runs_and_reports_every_key():
    from ctsearch.bench.coldstart import run_coldstart_bench

    out = run_coldstart_bench(n=20, repeats=1)
    assert {"import_torch", "help", "query", "ratio", "n", "repeats", "baseline"} <= set(out)
    for key in ("import_torch", "help", "query"):
        assert len(out[key]["runs_s"]) == 1 and out[key]["median_s"] > 0
    assert out["ratio"] == pytest.approx(out["query"]["median_s"] / out["import_torch"]["median_s"],
                                         rel=1e-2)

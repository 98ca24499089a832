"""Partial model loading: only the requested towers are built, strictly, from every file kind."""

from __future__ import annotations

import pytest
import torch

from ctsearch.errors import CheckpointError, ModelError, UsageError
from ctsearch.models import (
    CTCLIP,
    Part,
    load_checkpoint,
    load_parts,
    read_checkpoint,
    to_official,
)
from ctsearch.models.convert import VT

from conftest import checkpoint_files, tiny_official_model

IDS = torch.tensor([[2, 7, 9, 11, 3, 0], [2, 5, 3, 0, 0, 0]])
MASK = (IDS != 0).long()


def _model() -> CTCLIP:
    model = tiny_official_model()
    with torch.no_grad():
        model.temperature.fill_(0.7)
    return model


def _forbid_vision(monkeypatch) -> None:
    def boom(*args, **kwargs):
        raise AssertionError("the vision tower was built")

    monkeypatch.setattr("ctsearch.models.clip.CTViT", boom)


def test_a_full_build_in_parts_inits_exactly_as_before():
    model = _model()
    torch.manual_seed(0)
    staged = CTCLIP(model.cfg, parts=())
    staged.add_parts([Part.text, Part.vision])
    torch.manual_seed(0)
    full = CTCLIP(model.cfg)
    assert list(staged.state_dict()) == list(full.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(staged.state_dict().values(),
                                                 full.state_dict().values(), strict=True))


def test_text_only_load_matches_the_full_model_for_every_kind(tmp_path, monkeypatch):
    model = _model()
    with torch.no_grad():
        ref = model.encode_text(IDS, MASK)
    paths = checkpoint_files(model, tmp_path)
    _forbid_vision(monkeypatch)
    for path in paths:
        text = load_checkpoint(path, parts=["text"])
        assert text.parts == {Part.text} and text.visual_transformer is None, path.name
        assert text.to_visual_latent is None and not text.training
        with torch.no_grad():
            assert torch.equal(text.encode_text(IDS, MASK), ref), path.name
        assert text.logit_scale.item() == pytest.approx(float(torch.tensor(0.7).exp()))


def test_vision_only_load_and_adding_the_text_tower_later(tmp_path):
    model = _model()
    x = torch.rand(1, 1, 20, 40, 40) * 2 - 1
    with torch.no_grad():
        ref_image, ref_text = model.encode_volume(x), model.encode_text(IDS, MASK)
    path = checkpoint_files(model, tmp_path)[0]
    vision = load_checkpoint(path, parts=[Part.vision])
    assert vision.parts == {Part.vision} and vision.text_transformer is None
    with torch.no_grad():
        assert torch.equal(vision.encode_volume(x), ref_image)
    load_parts(vision, read_checkpoint(path), [Part.text])
    assert vision.parts == {Part.text, Part.vision}
    assert list(vision.state_dict()) == list(model.state_dict())  # canonical order kept
    with torch.no_grad():
        assert torch.equal(vision.eval().encode_text(IDS, MASK), ref_text)


def test_classfine_head_is_attached_to_a_partial_model(tmp_path):
    path = checkpoint_files(_model(), tmp_path)[1]
    assert load_checkpoint(path, parts=["text"]).classifier.weight.shape == (18, 8)


def test_strict_on_the_requested_parts_only(tmp_path):
    model = _model()
    sd = to_official(model.state_dict(), model.cfg)
    del sd[VT + "to_patch_emb.2.bias"]
    sd[VT + "to_patch_emb.2.weight"] = torch.zeros(3, 3)
    torch.save(sd, tmp_path / "bad_vision.pt")
    text = load_checkpoint(tmp_path / "bad_vision.pt", model.cfg, parts=["text"])
    assert text.parts == {Part.text}
    with pytest.raises(CheckpointError, match=r"bad_vision.pt: missing key "
                                              r"visual_transformer.to_patch_emb.2.bias"):
        load_checkpoint(tmp_path / "bad_vision.pt", model.cfg, parts=["vision"])
    sd = to_official(model.state_dict(), model.cfg)
    sd["to_text_latent.weight"] = torch.zeros(8, 3)
    torch.save(sd, tmp_path / "bad_text.pt")
    assert load_checkpoint(tmp_path / "bad_text.pt", model.cfg, parts=["vision"]).parts == {
        Part.vision}
    with pytest.raises(CheckpointError, match=r"shape mismatch for to_text_latent.weight: "
                                              r"expected \(8, 64\), found \(8, 3\)"):
        load_checkpoint(tmp_path / "bad_text.pt", model.cfg, parts=["text"])
    sd = to_official(model.state_dict(), model.cfg)
    del sd["temperature"]
    torch.save(sd, tmp_path / "no_temperature.pt")
    with pytest.raises(CheckpointError, match="missing key temperature"):
        load_checkpoint(tmp_path / "no_temperature.pt", model.cfg, parts=["text"])


def test_encoder_only_file_loads_vision_and_leaves_text_untrained(tmp_path):
    model = _model()
    enc = {k[len(VT):]: v for k, v in model.state_dict().items() if k.startswith(VT)}
    torch.save(enc, tmp_path / "clip_visual_encoder.pth")
    loaded = load_checkpoint(tmp_path / "clip_visual_encoder.pth", model.cfg, parts=["vision"])
    assert loaded.encoder_only and loaded.parts == {Part.vision}
    x = torch.rand(2, 1, 20, 40, 40) * 2 - 1
    assert torch.equal(loaded.encode_volume_codes(x), model.encode_volume_codes(x))
    assert load_checkpoint(tmp_path / "clip_visual_encoder.pth", model.cfg,
                           parts=["text"]).parts == {Part.text}


def test_read_checkpoint_builds_nothing_and_maps_the_file(tmp_path, monkeypatch):
    model = _model()
    path = checkpoint_files(model, tmp_path)[0]
    _forbid_vision(monkeypatch)
    calls, load = [], torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **kw: calls.append(kw) or load(*a, **kw))
    ckpt = read_checkpoint(path)
    assert ckpt.kind == "official" and ckpt.cfg.vision.dim == 16
    assert ckpt.cfg.clip.dim_latent == 8 and ckpt.cfg.text.width == 64
    # memory-mapped: the tensors a text query does not touch are never read from disk
    assert calls == [{"map_location": "cpu", "weights_only": True, "mmap": True}]


def test_unknown_part_is_a_usage_error(tmp_path):
    path = checkpoint_files(_model(), tmp_path)[0]
    with pytest.raises(UsageError, match="model part"):
        load_checkpoint(path, parts=["audio"])


def test_non_finite_weights_are_refused_on_the_parts_that_hold_them(tmp_path):
    model = _model()
    sd = to_official(model.state_dict(), model.cfg)
    sd[VT + "to_patch_emb.2.weight"] = sd[VT + "to_patch_emb.2.weight"].clone()
    sd[VT + "to_patch_emb.2.weight"][0, 0] = float("nan")
    torch.save(sd, tmp_path / "diverged.pt")
    assert load_checkpoint(tmp_path / "diverged.pt", model.cfg, parts=["text"]).parts == {
        Part.text}  # strict on the requested parts only, as for missing keys
    with pytest.raises(ModelError, match=r"diverged.pt: 1 tensor holds NaN or inf weights "
                                         r"\(first visual_transformer.to_patch_emb.2.weight\)"):
        load_checkpoint(tmp_path / "diverged.pt", model.cfg, parts=["vision"])
    sd = to_official(model.state_dict(), model.cfg)
    sd["temperature"] = torch.tensor(float("inf"))
    torch.save(sd, tmp_path / "hot.pt")
    with pytest.raises(ModelError, match=r"hot.pt: 1 tensor holds NaN or inf weights \(first "
                                         r"temperature\)"):
        load_checkpoint(tmp_path / "hot.pt", model.cfg, parts=["text"])


def test_a_non_finite_classfine_head_is_refused(tmp_path):
    path = checkpoint_files(_model(), tmp_path)[1]
    sd = torch.load(path, weights_only=True)
    sd["classifier.bias"][3] = float("-inf")
    torch.save(sd, path)
    with pytest.raises(ModelError, match=r"classfine.pt: 1 tensor holds NaN or inf weights "
                                         r"\(first classifier.bias\)"):
        load_checkpoint(path, parts=["text"])

"""CT-CLIP model: official fixture outputs, paper key set, checkpoint kinds, clear errors."""

from __future__ import annotations

import json

import pytest
import torch

from ctsearch.models import (
    CTCLIP,
    CheckpointError,
    load_checkpoint,
    model_preset,
    official_config,
    to_official,
)
from ctsearch.models.convert import POSITION_IDS, VT

from conftest import checkpoint_files, tiny_official_model

TOL = 1e-5


@pytest.fixture(scope="module")
def tiny(request):
    from conftest import SHARED

    root = SHARED / "fixtures/ctclip_official/tiny"
    if not root.is_dir():
        pytest.skip("../shared fixtures not available")
    c = json.loads((root / "config.json").read_text())
    cfg = official_config(ctvit=c["ctvit_kwargs"], ctclip=c["ctclip_kwargs"],
                          bert=c["bert_config_kwargs"])
    load = lambda name: torch.load(root / name, weights_only=True)  # noqa: E731
    return {"root": root, "cfg": cfg, "inputs": load("inputs.pt"), "expected": load("expected.pt")}


def _outputs(model, inp) -> dict:
    with torch.no_grad():
        text = model.encode_text(inp["input_ids"], inp["attention_mask"])
        image = model.encode_volume(inp["volume"])
        sim = text @ image.t() * model.logit_scale
        prompts = [[model.encode_text(ids, mask) for ids, mask in
                    zip(inp["prompt_input_ids"], inp["prompt_attention_mask"], strict=True)]]
        logits = torch.stack([torch.stack([p @ image[v] * model.logit_scale for p in prompts[0]])
                              for v in range(image.shape[0])])
        return {
            "patch_embeddings": model.visual_transformer.to_patch_emb(inp["volume"]),
            "pre_vq_tokens": model.visual_transformer.encode(inp["volume"]),
            "encoded_tokens": model.encode_volume_tokens(inp["volume"]),
            "vq_indices": model.encode_volume_codes(inp["volume"]),
            "text_latents": text, "image_latents": image, "similarity": sim,
            "temperature_exp": model.logit_scale,
            "loss": model(inp["input_ids"], inp["attention_mask"], inp["volume"]),
            "zero_shot_logits": logits, "zero_shot_probs": logits.softmax(dim=-1),
        }


@pytest.mark.parametrize("name", ["state_dict.pt", "state_dict_with_position_ids.pt"])
def test_official_fixture_outputs(tiny, name):
    model = load_checkpoint(tiny["root"] / name, tiny["cfg"])
    assert not model.training
    got, exp = _outputs(model, tiny["inputs"]), tiny["expected"]
    assert torch.equal(got.pop("vq_indices"), exp["vq_indices"])
    for key, value in got.items():
        assert value.shape == exp[key].shape, key
        assert (value - exp[key]).abs().max().item() < TOL, key
    codes = model.encode_volume_codes(tiny["inputs"]["volume"])
    assert torch.equal(model.tokens_from_codes(codes), exp["encoded_tokens"])


def test_paper_config_has_official_key_set():
    from conftest import SHARED

    keys_file = SHARED / "fixtures/ctclip_official/paper_v2_keys.json"
    if not keys_file.exists():
        pytest.skip("../shared fixtures not available")
    cfg = model_preset("paper")
    with torch.device("meta"):
        model = CTCLIP(cfg)
    sd = to_official(model.state_dict(), cfg)
    expected = {k["key"]: k["shape"] for k in json.loads(keys_file.read_text())["keys"]}
    assert {k: list(v.shape) for k, v in sd.items()} == expected
    assert model.visual_transformer.cfg.grid == (24, 24, 24) and cfg.dim_image == 294912


def _tiny_model() -> CTCLIP:
    return tiny_official_model()


def test_checkpoint_kinds_roundtrip(tmp_path):
    model = _tiny_model()
    x = torch.rand(1, 1, 20, 40, 40) * 2 - 1
    ref = model.encode_volume(x)
    for path in checkpoint_files(model, tmp_path)[:-1]:
        loaded = load_checkpoint(path)  # config inferred from the shapes
        assert torch.allclose(loaded.encode_volume(x), ref, atol=1e-6), path.name
    assert load_checkpoint(tmp_path / "classfine.pt").classifier.weight.shape == (18, 8)
    own = load_checkpoint(tmp_path / "own.pt")
    assert own.cfg.to_dict() == model.cfg.to_dict()
    assert torch.equal(own.encode_volume(x), ref)


def test_encoder_only_file(tmp_path):
    model = _tiny_model()
    enc = {k[len(VT):]: v for k, v in model.state_dict().items() if k.startswith(VT)}
    torch.save(enc, tmp_path / "clip_visual_encoder.pth")
    loaded = load_checkpoint(tmp_path / "clip_visual_encoder.pth", model.cfg)
    x = torch.rand(2, 1, 20, 40, 40) * 2 - 1
    assert torch.equal(loaded.encode_volume_codes(x), model.encode_volume_codes(x))


def test_wrong_files_give_one_clear_error(tmp_path):
    model = _tiny_model()
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "resnet.pt")
    with pytest.raises(CheckpointError, match="resnet.pt: not a CT-CLIP checkpoint"):
        load_checkpoint(tmp_path / "resnet.pt")
    sd = to_official(model.state_dict(), model.cfg)
    sd[VT + "to_patch_emb.2.bias"] = torch.zeros(99)
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"to_patch_emb.2.bias: expected \(16,\), found"):
        load_checkpoint(tmp_path / "bad.pt", model.cfg)
    sd = to_official(model.state_dict(), model.cfg)
    del sd["to_text_latent.weight"]
    torch.save(sd, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="missing key to_text_latent.weight"):
        load_checkpoint(tmp_path / "missing.pt", model.cfg)
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="junk.pt: not a readable torch checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        load_checkpoint(tmp_path / "nope.pt")
    assert POSITION_IDS not in model.state_dict()


def test_bad_inputs(tmp_path):
    model = _tiny_model()
    with pytest.raises(ValueError, match=r"expected a \(B, 1, D, H, W\) volume"):
        model.encode_volume(torch.zeros(1, 1, 21, 40, 40))
    with pytest.raises(ValueError, match="floating-point"):
        model.encode_volume(torch.zeros(1, 1, 20, 40, 40, dtype=torch.int64))
    with pytest.raises(ValueError, match="empty text"):
        model.encode_text(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long))


def test_official_config_validates():
    with pytest.raises(ValueError, match="dim_image 100 != h\\*w\\*dim"):
        official_config(ctclip={"dim_image": 100})
    with pytest.raises(ValueError, match="unsupported CTViT arguments"):
        official_config(ctvit={"bogus": 1})
    assert official_config().dim_image == 294912


def test_codebook_kmeans_init_finds_clusters():
    from ctsearch.models.ctvit import VectorQuantize

    g = torch.Generator().manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(4, 16, generator=g), dim=-1)
    tokens = centres.repeat(50, 1) + 0.01 * torch.randn(200, 16, generator=g)
    vq = VectorQuantize(16, 8)
    vq.init_from(tokens, iters=20)
    sim = torch.nn.functional.normalize(vq.embed, dim=-1) @ centres.t()
    assert (sim.max(dim=0).values > 0.99).all()  # every true centre has a code next to it
    assert torch.allclose(vq.embed.norm(dim=-1), torch.ones(8), atol=1e-5)

"""ClassFine and VocabFine on an index."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner


def test_classfine_head_learns_a_separable_label_and_loads_as_lipro(world, tmp_path):
    import torch

    from ctsearch.errors import IndexMismatch
    from ctsearch.eval.detection import auroc
    from ctsearch.finetune.classfine import head_probs, load_head, to_lipro, train_head
    from ctsearch.models import load_checkpoint, to_official

    rng = np.random.default_rng(0)
    z = rng.standard_normal((200, 8)).astype(np.float32)
    y = (z[:, :1] > 0.3).astype(np.float32)  # a label the latent's first unit decides
    head = train_head(z, y, epochs=300)
    probs = head_probs({"weight": head.weight.detach(), "bias": head.bias.detach()}, z)
    assert auroc(probs[:, 0], y[:, 0]) > 0.97
    from ctsearch.cli.main import app

    res = CliRunner().invoke(app, [
        "finetune", "classfine", "--index", "base", "--home", str(world["home"]), "--out",
        str(tmp_path), "--split", "train", "--epochs", "20"])
    assert res.exit_code == 0, res.output
    saved = load_head(tmp_path / "classfine.pt", world["info"].model.id)
    with pytest.raises(IndexMismatch, match="head trained on model"):
        load_head(tmp_path / "classfine.pt", "another")
    model = load_checkpoint(world["ckpt"])
    lipro = to_lipro(saved, to_official(model.state_dict(), model.cfg))
    torch.save(lipro, tmp_path / "lipro.pt")
    again = load_checkpoint(tmp_path / "lipro.pt", model.cfg)
    assert torch.equal(again.classifier.weight, saved["weight"])
    from ctsearch.bench.detect import run_detect_bench

    r = run_detect_bench("base", world["home"], split=None, threshold_split=None, draws=5,
                         head=tmp_path / "classfine.pt")
    assert r["template"] == "classfine" and 0 <= r["mean"]["auroc"] <= 1


def test_vocabfine_trains_the_text_side_only(world, tmp_path):
    import torch

    from ctsearch.finetune.vocabfine import pair_loss, train_vocabfine
    from ctsearch.models import load_checkpoint
    from ctsearch.search import Searcher

    z = torch.tensor([[1.0, 0.0]])
    prompts = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    expect = -np.log(np.exp(2) / (np.exp(2) + 1))
    assert float(pair_loss(z, prompts, torch.tensor([[1.0]]), 2.0)) == pytest.approx(expect)
    s = Searcher("base", world["home"])
    ckpt = train_vocabfine(s, tmp_path, split="train", epochs=3, lr=1e-3)
    new, old = load_checkpoint(ckpt), load_checkpoint(world["ckpt"])
    key = "visual_transformer.to_patch_emb.2.weight"
    assert torch.equal(new.state_dict()[key], old.state_dict()[key])
    assert not torch.equal(new.to_text_latent.weight, old.to_text_latent.weight)
    assert (tmp_path / "tokenizer" / "vocab.txt").exists()  # travels with the checkpoint


def test_vocabfine_end_to_end_trains_the_image_encoder_too(world, tmp_path):
    import torch

    from ctsearch.cli.main import app
    from ctsearch.errors import MissingFileError
    from ctsearch.finetune.vocabfine import train_vocabfine
    from ctsearch.models import load_checkpoint
    from ctsearch.search import Searcher

    r = CliRunner().invoke(app, [
        "finetune", "vocabfine", "--index", "base", "--home", str(world["home"]), "--out",
        str(tmp_path), "--epochs", "2", "--lr", "1e-3", "--end-to-end"])
    assert r.exit_code == 0, r.output
    new, old = load_checkpoint(tmp_path / "model-vocabfine.pt"), load_checkpoint(world["ckpt"])
    key = "visual_transformer.to_patch_emb.2.weight"
    assert not torch.equal(new.state_dict()[key], old.state_dict()[key])
    assert torch.equal(new.visual_transformer.vq.embed, old.visual_transformer.vq.embed)
    assert torch.load(tmp_path / "model-vocabfine.pt", weights_only=False)[
        "extras"]["vocabfine"]["end_to_end"] is True
    s = Searcher("base", world["home"])
    s.rows[next(i for i, r in enumerate(s.rows) if r["split"] == "train")]["key"] = "ff" * 12
    with pytest.raises(MissingFileError, match="1 preprocessed volumes of index 'base' are "
                       "missing"):
        train_vocabfine(s, tmp_path / "x", end_to_end=True)


def test_finetune_argument_errors(world, tmp_path):
    from ctsearch.cli.main import app
    from ctsearch.errors import UsageError
    from ctsearch.finetune.classfine import finetune_classfine
    from ctsearch.finetune.vocabfine import train_vocabfine
    from ctsearch.search import Searcher

    s = Searcher("base", world["home"])
    with pytest.raises(UsageError, match="^loss 'l1': choose one of ce, mse$"):
        train_vocabfine(s, tmp_path, loss="l1")
    with pytest.raises(UsageError, match="index 'base' has no 'test' volumes"):
        train_vocabfine(s, tmp_path, split="test")
    with pytest.raises(UsageError, match="index 'base' has no 'test' volumes"):
        finetune_classfine("base", tmp_path, home=world["home"], split="test")
    res = CliRunner().invoke(app, ["finetune", "vocabfine", "--index", "base", "--home",
                                   str(world["home"]), "--out", str(tmp_path), "--loss", "l1"])
    assert res.exit_code == 2 and "'l1' is not one of" in " ".join(res.output.split())
    assert not list(tmp_path.iterdir())

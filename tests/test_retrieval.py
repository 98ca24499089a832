"""Retrieval metrics: closed forms of both MAP@K modes, Recall@K, exact random, bootstrap."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from ctsearch.retrieval import bootstrap_ci, label_iou, map_corrected, map_official, recall_hits
from ctsearch.zeroshot import SEVEN

# 4 volumes: two reconstructions of scan a (labels 11), scan b (10), scan c normal (00)
LAT = np.array([[1, 0], [0.96, 0.28], [0.6, 0.8], [0.28, 0.96]], np.float32)
LAB = np.array([[1, 1], [1, 1], [1, 0], [0, 0]])
SCANS = ["a", "a", "b", "c"]


def test_label_iou():
    iou = label_iou(LAB, LAB, normal_match=False)
    assert iou[0, 2] == 0.5 and iou[0, 1] == 1 and iou[3, 3] == 0
    assert label_iou(LAB, LAB, normal_match=True)[3, 3] == 1


def test_official_map_keeps_self_and_is_cumulative():
    # pool = volumes 0,1,2 (abnormal). K=1: q0->0 (1), q1->1 (1), q2->2 (1), q3->2 (0) = 0.75
    # K=5 (all 3): q0 (1+1+.5)/3, q1 same, q2 (.5+.5+1)/3, q3 0 -> mean 0.5417;
    # cumulative: mean of the 8 per-query values = (3 + 0 + 2*(2.5/3) + 2/3 + 0) / 8
    out = map_official(LAT, LAB, ks=(1, 5))
    assert out["1"] == pytest.approx(0.75)
    assert out["5"] == pytest.approx((3 + 2 * 2.5 / 3 + 2 / 3) / 8)


def test_corrected_map_excludes_the_scan_and_resets():
    maps, rand, per = map_corrected(LAT, LAB, SCANS, ks=(1, 2))
    # nearest outside the own scan: q0 -> 2 (IoU .5), q1 -> 2 (.5), q2 -> 3 (0), q3 -> 2 (0)
    assert per["1"].tolist() == pytest.approx([0.5, 0.5, 0.0, 0.0])
    # K=2: q0 {2, 3}, q1 {2, 3}, q2 {3, 1}: (.5 + 0) / 2 each; q3 {2, 1}: 0
    assert maps["2"] == pytest.approx((0.25 + 0.25 + 0.25 + 0) / 4)
    # random: q0 eligible {2,3}: .25; q1 .25; q2 {0,1,3}: 1/3; q3 {0,1,2}: 0
    assert rand["1"] == pytest.approx((0.25 + 0.25 + 1 / 3 + 0) / 4)


def test_recall_hits_and_bootstrap():
    text = LAT.copy()
    hits = recall_hits(text, LAT, ks=(1, 2))
    assert hits["1"].mean() == 1.0
    lo, hi = bootstrap_ci(np.array([0.0, 1.0] * 50), draws=500)
    assert lo < 0.5 < hi and hi - lo < 0.3
    assert bootstrap_ci(np.ones(10)) == [1.0, 1.0]


def test_bench_retrieval_on_an_index(world):
    from ctsearch.cli.main import app

    res = CliRunner().invoke(app, ["bench", "retrieval", "--index", "base", "--home",
                                   str(world["home"]), "--split", "all", "--json", "--out",
                                   str(world["root"] / "bench")])
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert set(r) >= {"mode", "split", "n_queries", "map", "recall", "random", "ci95"}
    assert list(r["map"]) == ["1", "5", "10", "50"]
    assert list(r["recall"]) == ["5", "10", "50", "100"]
    assert r["random"]["recall"]["5"] == 5 / r["n_queries"] and r["n_queries"] == 10
    official = CliRunner().invoke(app, ["bench", "retrieval", "--index", "base", "--home",
                                        str(world["home"]), "--split", "all", "--mode",
                                        "official", "--json"])
    assert json.loads(official.stdout)["mode"] == "official"


def test_detection_metrics_closed_form():
    from ctsearch.detection import binary_scores, nearest_corner_threshold

    score, y = np.array([0.1, 0.4, 0.6, 0.9]), np.array([0, 0, 1, 1])
    thr = nearest_corner_threshold(score, y)
    assert 0.4 < thr <= 0.6  # separates perfectly; ties -> the last grid point
    s = binary_scores(np.array([True, False, True, True]), y, weighted_f1=False)
    assert s["f1"] == pytest.approx(0.8) and s["precision"] == pytest.approx(2 / 3)
    w = binary_scores(np.array([True, False, True, True]), y, weighted_f1=True)
    assert w["f1"] == pytest.approx((0.8 * 2 + (2 / 3) * 2) / 4) and w["accuracy"] == 0.75


def test_bench_detect_on_an_index(world):
    from ctsearch.bench.detect import run_detect_bench

    r = run_detect_bench("base", world["home"], split=None, threshold_split=None, draws=20)
    assert set(r["per_finding"]["Cardiomegaly"]) == {"auroc", "f1", "accuracy", "precision",
                                                     "threshold"}
    assert set(r["templates"]) == {"official", "v1"} and len(r["ci95"]["auroc"]) == 2
    seven = run_detect_bench("base", world["home"], split=None, threshold_split=None,
                             templates=("seven",), draws=5)
    assert list(seven["templates"]) == list(SEVEN) and seven["template"] == "official"
    off = run_detect_bench("base", world["home"], mode="official", split=None, draws=5)
    assert off["threshold_split"] is None and off["mode"] == "official"


def test_classfine_head_learns_a_separable_label_and_loads_as_lipro(world, tmp_path):
    import torch

    from ctsearch.classfine import head_probs, load_head, to_lipro, train_head
    from ctsearch.detection import auroc
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
    saved = load_head(tmp_path / "classfine.pt", world["info"]["model"]["id"])
    with pytest.raises(ValueError, match="head trained on model"):
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

    from ctsearch.models import load_checkpoint
    from ctsearch.search import Searcher
    from ctsearch.vocabfine import pair_loss, train_vocabfine

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
    from ctsearch.models import load_checkpoint
    from ctsearch.search import Searcher
    from ctsearch.vocabfine import train_vocabfine

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
    with pytest.raises(ValueError, match="1 preprocessed volumes of index 'base' are missing"):
        train_vocabfine(s, tmp_path / "x", end_to_end=True)


def test_external_mapping_merges_calcifications_and_drops_two():
    from ctsearch.data.schema import PATHOLOGIES
    from ctsearch.detection import external_mapping

    probs = np.tile(np.linspace(0, 1, 18), (2, 1))
    labels = np.zeros((2, 18), int)
    p, y, names = external_mapping(probs, labels, list(PATHOLOGIES))
    assert p.shape == (2, 16) and len(names) == 16 and y.shape == (2, 16)
    assert "Mosaic attenuation pattern" not in names
    art = names.index("Arterial wall calcification")
    assert p[0, art] == probs[0, PATHOLOGIES.index("Coronary artery wall calcification")]


def test_bench_detect_external(world):
    from ctsearch.bench.detect import run_detect_bench

    r = run_detect_bench("base", world["home"], split=None, threshold_split=None, draws=3,
                         external=True)
    assert len(r["per_finding"]) == 16 and r["external_mapping"]

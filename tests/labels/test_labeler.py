"""Report labeler: negation cases, CSV round trip, and the real-report benchmark (when shared)."""

from __future__ import annotations

import csv

import pytest
from typer.testing import CliRunner

from ctsearch.cli.main import app
from ctsearch.data.schema import PATHOLOGIES
from ctsearch.labels.rules import explain, label_report


@pytest.mark.parametrize("text,finding,label", [
    ("Pleural effusion is present on the right.", "Pleural effusion", 1),
    ("No pleural effusion.", "Pleural effusion", 0),
    ("Pericardial effusion-thickening was not observed.", "Pericardial effusion", 0),
    ("Pericardial effusion - no thickening was detected.", "Pericardial effusion", 0),
    ("No enlarged lymph nodes in pathological dimensions were detected.", "Lymphadenopathy", 0),
    ("Millimetric lymph nodes are observed in the mediastinum.", "Lymphadenopathy", 1),
    ("The cardiothoracic index increased in favor of the heart.", "Cardiomegaly", 1),
    ("Heart contour and size are normal.", "Cardiomegaly", 0),
    ("Contrast material was not given.", "Medical material", 0),
    ("A central venous catheter is observed.", "Medical material", 1),
    ("Reticulonodular densities in the lower lobes.", "Lung nodule", 0),
    ("A 6 mm nodule in the right upper lobe.", "Lung nodule", 1),
    ("Calcific plaques are observed in the aortic arch.", "Arterial wall calcification", 1),
    ("Calcified plaques in the coronary arteries.", "Coronary artery wall calcification", 1),
    ("No consolidation, but atelectasis in the left lower lobe.", "Atelectasis", 1),
    ("No consolidation, but atelectasis in the left lower lobe.", "Consolidation", 0),
])
def test_sentence_rules(text, finding, label):
    assert label_report(text)[finding] == label


def test_explain_names_sentence_and_rule():
    ev = [e for e in explain("Trachea is open. No pleural effusion.") if
          e.finding == "Pleural effusion"]
    assert len(ev) == 1 and ev[0].negated and ev[0].sentence == "no pleural effusion."


def test_labels_csv_round_trip(tmp_path):
    reports = tmp_path / "r.csv"
    with open(reports, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["VolumeName", "ClinicalInformation_EN", "Technique_EN", "Findings_EN",
                    "Impressions_EN"])
        w.writerow(["a_1_a_1.nii.gz", "", "", "Emphysema in both lungs.", "Not given."])
    res = CliRunner().invoke(app, ["labels", "--reports", str(reports), "--out",
                                   str(tmp_path / "l.csv")])
    assert res.exit_code == 0, res.output
    with open(tmp_path / "l.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["VolumeName", *PATHOLOGIES] and rows[0]["Emphysema"] == "1"
    assert sum(int(rows[0][p]) for p in PATHOLOGIES) == 1


def test_real_reports_macro_f1_on_held_out_scans(shared):
    from ctsearch.bench.labels import run_labels_bench

    root = shared / "fixtures/ctrate_real"
    r = run_labels_bench(root / "train_reports.csv", root / "train_reports_labels.csv")
    assert r["held_out"]["n_scans"] > 300 and r["held_out"]["macro_f1"] >= 0.90


def test_learned_labeler_trains_saves_and_labels(tmp_path):
    import numpy as np
    import torch
    from transformers import BertConfig, BertModel

    from ctsearch.labels.learned import ModelLabeler, train_labeler
    from ctsearch.models.text import train_wordpiece

    texts = ["pleural effusion on the right.", "no abnormal finding.", "right pleural effusion.",
             "lungs are clear."] * 6
    y = np.zeros((len(texts), len(PATHOLOGIES)))
    y[:, PATHOLOGIES.index("Pleural effusion")] = [1, 0, 1, 0] * 6
    folder = tmp_path / "bert"
    tok = train_wordpiece(texts, folder, vocab_size=100)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=64,
                         max_position_embeddings=64)).save_pretrained(folder)
    out = train_labeler(texts, y, tmp_path / "labeler", str(folder), epochs=30, lr=3e-3,
                        batch=8, max_length=16)
    pred = ModelLabeler(out).label(["pleural effusion on the left.", "lungs are clear."])
    j = PATHOLOGIES.index("Pleural effusion")
    assert pred[:, j].tolist() == [1, 0] and pred.sum() == 1

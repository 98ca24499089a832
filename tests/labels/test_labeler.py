"""Report labeler: negation cases, CSV round trip, and the real-report benchmark (when shared)."""

from __future__ import annotations

import csv

import pytest
from typer.testing import CliRunner

from ctsearch.cli.main import app
from ctsearch.data.schema import PATHOLOGIES
from ctsearch.errors import DataError, FieldError, MissingFileError
from ctsearch.labels.rules import explain, label_csv, label_matrix, label_report

REPORT_HEADER = ["VolumeName", "ClinicalInformation_EN", "Technique_EN", "Findings_EN",
                 "Impressions_EN"]


def _csv(path, header, rows):
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def _labelled(tmp_path, flag="1"):
    """Reports of scans a, b (two reconstructions), c; labels: Emphysema for a, b, c; none for d."""
    reports = _csv(tmp_path / "r.csv", REPORT_HEADER, [
        ["s_1_a_1.nii.gz", "", "", "Emphysema in both lungs.", "Not given."],
        ["s_2_b_1.nii.gz", "", "", "No emphysema.", ""],
        ["s_2_b_2.nii.gz", "", "", "No emphysema.", ""],
        ["s_3_c_1.nii.gz", "", "", "Bullous changes.", ""],
        ["s_4_d_1.nii.gz", "", "", "Emphysema.", ""]])
    j = PATHOLOGIES.index("Emphysema")
    rows = [[name, *(flag if i == j else "0" for i in range(len(PATHOLOGIES)))]
            for name in ("s_1_a_1.nii.gz", "s_2_b_1.nii.gz", "s_2_b_2.nii.gz", "s_3_c_1.nii.gz")]
    return reports, _csv(tmp_path / "l.csv", ["VolumeName", *PATHOLOGIES], rows)


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
    out = train_labeler(texts, y, tmp_path / "labeler", text_encoder=str(folder), epochs=30,
                        lr=3e-3, batch=8, max_length=16)
    labeler = ModelLabeler(out)
    pred = labeler.label(["pleural effusion on the left.", "lungs are clear."])
    j = PATHOLOGIES.index("Pleural effusion")
    assert pred[:, j].tolist() == [1, 0] and pred.sum() == 1
    one = labeler.label_report("pleural effusion on the left.")
    assert list(one) == list(PATHOLOGIES) and one == {**dict.fromkeys(PATHOLOGIES, 0),
                                                      "Pleural effusion": 1}


def test_label_matrix_follows_the_findings_order():
    m = label_matrix(["Emphysema.", "No emphysema."])
    j = PATHOLOGIES.index("Emphysema")
    assert len(m[0]) == 18 and m[0][j] == 1 and sum(m[0]) == 1 and sum(m[1]) == 0


def test_label_csv_errors(tmp_path):
    bad = _csv(tmp_path / "bad.csv", ["VolumeName", "Findings_EN"], [["a", "x"]])
    with pytest.raises(DataError, match=r"missing column\(s\) \['Impressions_EN'\]"):
        label_csv(bad, tmp_path / "out.csv")
    with pytest.raises(MissingFileError, match="does not exist"):
        label_csv(tmp_path / "none.csv", tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_labelled_reports_one_row_per_scan(tmp_path):
    from ctsearch.labels.dataset import held_out, labelled_reports

    parts = labelled_reports(*_labelled(tmp_path))
    rows = parts["dev"] + parts["held_out"]
    assert len(rows) == 3 and len(parts["held_out"]) == sum(
        held_out(scan) for scan in ("s_1_a", "s_2_b", "s_3_c"))
    j = PATHOLOGIES.index("Emphysema")
    assert sorted((t, y[j]) for t, y in rows) == [("Bullous changes.", 1),
                                                  ("Emphysema in both lungs.", 1),
                                                  ("No emphysema.", 1)]


def test_labelled_reports_bad_label_value(tmp_path):
    from ctsearch.labels.dataset import labelled_reports

    with pytest.raises(FieldError, match="s_1_a_1.nii.gz: labels must be 0 or 1"):
        labelled_reports(*_labelled(tmp_path, flag="yes"))


def test_labels_bench_scores_the_rules(tmp_path):
    from ctsearch.bench.labels import run_labels_bench

    r = run_labels_bench(*_labelled(tmp_path), out=tmp_path / "out")
    assert (tmp_path / "out" / "labels-r.json").exists()
    # scan a is held out (sha1), b and c are dev; truth: Emphysema for all three. Rules: b is
    # negated ("No emphysema.") -> a miss; c ("Bullous changes.") and a are hits.
    assert (r["dev"]["n_scans"], r["held_out"]["n_scans"]) == (2, 1)
    assert r["dev"]["per_finding"]["Emphysema"] == {"precision": 1.0, "recall": 0.5,
                                                    "f1": pytest.approx(2 / 3), "positives": 2}
    assert r["held_out"]["per_finding"]["Emphysema"]["f1"] == 1.0
    assert r["dev"]["per_finding"]["Cardiomegaly"]["f1"] == 1.0  # nothing to find: agreement
    assert r["dev"]["macro_f1"] == pytest.approx((2 / 3 + 17) / 18)


def test_label_scores_closed_form():
    import numpy as np

    from ctsearch.eval.labels import label_scores

    y = np.zeros((4, 18), bool)
    pred = np.zeros((4, 18), bool)
    y[:3, 0], pred[[0, 3], 0] = True, True  # tp 1, fp 1, fn 2
    s = label_scores(pred, y)
    first = s["per_finding"][PATHOLOGIES[0]]
    assert first == {"precision": 0.5, "recall": 1 / 3, "f1": 0.4, "positives": 3}
    assert s["per_finding"][PATHOLOGIES[1]]["f1"] == 1.0
    assert s["macro_f1"] == pytest.approx((0.4 + 17) / 18)


def test_train_labeler_on_needs_labelled_reports(tmp_path):
    from ctsearch.labels.learned import train_labeler_on

    reports, _ = _labelled(tmp_path)
    empty = _csv(tmp_path / "empty.csv", ["VolumeName", *PATHOLOGIES], [])
    with pytest.raises(DataError, match="no labelled development reports"):
        train_labeler_on(reports, empty, tmp_path / "model")


def test_model_labeler_needs_a_trained_folder(tmp_path):
    from ctsearch.labels.learned import ModelLabeler

    with pytest.raises(MissingFileError, match="not a trained labeler folder"):
        ModelLabeler(tmp_path)

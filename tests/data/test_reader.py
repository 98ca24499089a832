"""CT-RATE reader: tree walk, CSV joins by name, field parsing, intensity columns, parquet."""

from __future__ import annotations

import logging

import pytest

from ctsearch.data import PATHOLOGIES, read_any, read_cases, read_ctrate, write_cases
from ctsearch.data import fields as F
from ctsearch.data.cases import CASE_COLUMNS
from ctsearch.data.ctrate import CTRateError, read_keyed_csv


def test_fields_parse_ctrate_formats():
    assert F.parse_xy_spacing("[0.341796875, 0.341796875]") == 0.341796875
    assert F.parse_age("036Y") == 36 and F.parse_age("018M") == 1 and F.parse_age("") is None
    assert F.normalise_manufacturer("SIEMENS") == F.normalise_manufacturer("Siemens Healthineers")
    assert F.parse_kernel("['Bl57d', '3']") == "Bl57d" and F.parse_kernel("YA") == "YA"
    assert F.volume_key("train_1_a_1") == "train_1_a_1.nii.gz"
    assert F.parse_volume_name("valid_53_a_1.nii.gz") == {
        "split": "valid", "patient": "valid_53", "scan": "valid_53_a", "reconstruction": 1}
    with pytest.raises(F.FieldError, match="PatientAge"):
        F.parse_age("old")


def test_read_ctrate_columns_and_joins(mini_tree):
    table = read_ctrate(mini_tree["root"])
    assert table.column_names == list(CASE_COLUMNS)
    rows = {r["volume"]: r for r in table.to_pylist()}
    assert sorted(rows) == sorted(mini_tree["names"])
    r = rows["train_1_a_2.nii.gz"]
    assert (r["split"], r["patient"], r["scan"], r["reconstruction"]) == (
        "train", "train_1", "train_1_a", 2)
    assert r["spacing"] == [4.0, 2.0, 2.0] and r["shape"] == [20, 40, 36]
    assert r["intercept"] == -8192.0 and r["slope"] == 1.0
    assert r["manufacturer"] == "Siemens" and r["age"] == 36 and r["kernel"] == "Bl57d"
    # labels were written in reversed column order: joined by name they keep their meaning
    assert [r[p] for p in PATHOLOGIES] == [int(i % 3 == 0) for i in range(18)]
    assert r["findings"] == "Findings of train_1_a_2.nii.gz." and r["impressions"] == "Atelectasis."
    assert r["clinical_information"] == "Not given."


def test_intensity_columns(mini_tree):
    rows = {r["volume"]: r for r in read_ctrate(mini_tree["root"] / "dataset").to_pylist()}
    assert rows["valid_2_a_1.nii.gz"]["intensity_version"] == "v2"
    assert rows["valid_2_a_1.nii.gz"]["intensity_source"] == "folder"
    assert rows["train_1_a_1.nii.gz"]["intensity_version"] == "auto"
    forced = read_ctrate(mini_tree["root"], intensity="v1").to_pylist()
    assert {r["intensity_source"] for r in forced} == {"override"}


def test_accession_no_alias(mini_tree, tmp_path):
    path = mini_tree["root"] / "dataset/radiology_text_reports/train_reports.csv"
    path.write_text(path.read_text().replace("VolumeName", "AccessionNo", 1))
    rows = {r["volume"]: r for r in read_ctrate(mini_tree["root"]).to_pylist()}
    assert rows["train_1_a_1.nii.gz"]["findings"] == "Findings of train_1_a_1.nii.gz."


def test_missing_key_column_names_file(mini_tree):
    path = mini_tree["root"] / "dataset/metadata/train_metadata.csv"
    path.write_text(path.read_text().replace("VolumeName", "Name", 1))
    with pytest.raises(CTRateError, match="train_metadata.csv: no VolumeName or AccessionNo"):
        read_keyed_csv(path)


def test_unreadable_csv_names_file(mini_tree):
    path = mini_tree["root"] / "dataset/metadata/train_metadata.csv"
    path.write_bytes(b"\xff\xfe\x00junk" * 20)
    with pytest.raises(CTRateError, match="train_metadata.csv: unreadable CSV"):
        read_ctrate(mini_tree["root"])


def test_missing_label_column_warns_and_nulls(mini_tree, caplog):
    path = mini_tree["root"] / "dataset/multi_abnormality_labels/train_predicted_labels.csv"
    path.write_text(path.read_text().replace("Emphysema", "Emph", 1))
    with caplog.at_level(logging.WARNING):
        rows = {r["volume"]: r for r in read_ctrate(mini_tree["root"]).to_pylist()}
    assert "train_predicted_labels.csv: missing column(s) Emphysema" in caplog.text
    assert rows["train_1_a_1.nii.gz"]["Emphysema"] is None
    assert rows["train_1_a_1.nii.gz"]["Medical material"] == 1


def test_unreadable_metadata_is_a_row_problem(mini_tree):
    path = mini_tree["root"] / "dataset/metadata/train_metadata.csv"
    path.write_text(path.read_text().replace('"[2.0, 2.0]"', '"[abc]"', 1))
    rows = {r["volume"]: r for r in read_ctrate(mini_tree["root"]).to_pylist()}
    bad = [r for r in rows.values() if r["problem"]]
    assert len(bad) == 1 and "unreadable metadata" in bad[0]["problem"]
    assert "XYSpacing" in bad[0]["problem"]


def test_fixed_copy_wins_over_v1(mini_tree):
    src = next((mini_tree["root"] / "dataset/train").rglob("train_1_a_1.nii.gz"))
    dst = mini_tree["root"] / "dataset/train_fixed/train_1/train_1_a/train_1_a_1.nii.gz"
    dst.parent.mkdir(parents=True)
    dst.write_bytes(src.read_bytes())
    rows = {r["volume"]: r for r in read_ctrate(mini_tree["root"]).to_pylist()}
    assert "train_fixed" in rows["train_1_a_1.nii.gz"]["path"]
    assert len(rows) == 3


def test_parquet_roundtrip_and_duckdb(mini_tree, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    path = write_cases(read_any(mini_tree["root"]), tmp_path / "cases.parquet")
    assert read_cases(path).num_rows == 3
    n = duckdb.sql(f"SELECT count(*) FROM '{path}' WHERE \"Medical material\" = 1 "
                   "AND manufacturer = 'Siemens'").fetchall()[0][0]
    assert n == 2


def test_real_ctrate_csvs_parse(shared):
    real = shared / "fixtures/ctrate_real"
    _, meta = read_keyed_csv(real / "validation_metadata.csv")
    _, labels = read_keyed_csv(real / "train_predicted_labels.csv")
    _, reports = read_keyed_csv(real / "train_reports.csv")
    assert len(meta) == 3039 and len(labels) == 47149 and len(reports) == 2289
    values = [F.parse_xy_spacing(r["XYSpacing"]) for r in meta.values()]
    assert min(values) > 0.28 and max(values) < 0.98
    vendors = {F.normalise_manufacturer(r["Manufacturer"]) for r in meta.values()}
    assert vendors == {"Philips", "Siemens"}
    intercepts = {float(r["RescaleIntercept"]) for r in meta.values()}
    assert intercepts == {-1024.0, -8192.0}
    ages = [F.parse_age(r["PatientAge"]) for r in meta.values()]
    assert all(a is None or 0 < a < 110 for a in ages)

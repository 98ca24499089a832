"""Queries under hostile input: the `where` sandbox, database errors, splits, strict JSON."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from ctsearch.cli.main import app
from ctsearch.errors import CTSearchError, QueryError
from ctsearch.search import Searcher
from ctsearch.search.filters import MetaFilter
from ctsearch.search.store import VOLUMES, embedding_array

runner = CliRunner()

META = pa.table({
    "id": list(range(1, 9)),
    "volume": [f"v{i}.nii.gz" for i in range(1, 9)],
    "split": ["train", "valid"] * 4,
    "age": [30, 40, 50, 60, 70, 80, 35, 45],
    "sex": ["F", "M"] * 4,
    "Pleural effusion": [1, 1, 0, 1, 1, 0, 0, 1],
})
VALID = {2, 4, 6, 8}
VALID_EFFUSION = {2, 4, 8}


def _ids(where=None, labels=(), split=None) -> set[int]:
    return set(MetaFilter(META).allowed(where, labels, split).tolist())


def _run(*args) -> object:
    return runner.invoke(app, [str(a) for a in args])


def _said(res) -> str:
    return " ".join(res.output.split())


# ------------------------------------------------------------------ the sandbox (library)

@pytest.mark.parametrize("where", [
    "1=1) OR (1=1", "true) OR (true", "true /*", "1=1; DROP VIEW volumes",
    "true); DROP VIEW volumes; --", "1=1, 2=2", "age > 1 ORDER BY 1", "", "   "])
def test_where_that_is_not_one_expression_is_refused(where):
    f = MetaFilter(META)
    with pytest.raises(QueryError) as err:
        f.allowed(where, split="valid")
    assert str(err.value).startswith(f"where {where!r}") and "\n" not in str(err.value)
    assert set(f.allowed("true", split="valid").tolist()) == VALID  # the view is intact


@pytest.mark.parametrize("where", [
    "true --", "true -- ) OR (true", "true /* ) OR (true */", "true\n-- x\n",
    "id IN (SELECT id FROM volumes)", "EXISTS (SELECT 1 FROM _meta WHERE split = 'train')",
    "(SELECT count(*) FROM volumes) > 0", "sex IN ('F', 'M') OR true"])
def test_where_text_cannot_widen_the_split_and_label_filters(where):
    assert _ids(where, split="valid") == VALID
    assert _ids(where, ("pleural_effusion",), "valid") == VALID_EFFUSION


def test_where_semicolon_inside_a_string_is_data_not_a_statement():
    assert _ids("sex = ';'", split="valid") == set()
    assert _ids("sex <> ';' AND age > 40", split="valid") == {4, 6, 8}


@pytest.mark.parametrize("where,first", [
    ("foo(age) > 1", "foo"),
    ("age ~~~ 3", "~~~"),
    ("sex > 5", "VARCHAR"),
    ("sex", "to BOOL"),
    ("EXISTS (SELECT * FROM read_csv('/etc/passwd'))", "/etc/passwd"),
    ("EXISTS (SELECT * FROM read_text('/etc/passwd'))", "/etc/passwd"),
    ("read_text('/etc/passwd') IS NOT NULL", "read_text"),
    ("EXISTS (SELECT * FROM glob('/*'))", "/*"),
    ("EXISTS (SELECT * FROM query('SET enable_external_access = true'))", "SELECT"),
    ("agex > 3", "unknown column 'agex'")])
def test_database_errors_are_one_line_query_errors(where, first):
    with pytest.raises(QueryError) as err:
        MetaFilter(META).allowed(where, split="valid")
    msg = str(err.value)
    assert msg.startswith(f"where {where!r}") and first in msg and "\n" not in msg


def test_file_access_stays_off_and_settings_are_locked():
    f = MetaFilter(META)
    with pytest.raises(QueryError, match="Permission"):
        f.allowed("EXISTS (SELECT * FROM read_text('/etc/hostname'))")
    with pytest.raises(Exception, match="locked"):
        f.con.execute("SET enable_external_access = true")


def test_unknown_split_lists_the_index_splits():
    with pytest.raises(QueryError, match=r"^split 'test': .*train, valid$"):
        MetaFilter(META).allowed(split="test")
    with pytest.raises(QueryError, match=r"^split 'Valid'"):
        MetaFilter(META).allowed("age > 1", split="Valid")


# ------------------------------------------------------------------ the sandbox (Searcher, CLI)

def test_searcher_keeps_its_filters_around_any_where(world):
    s = Searcher("base", world["home"])
    with pytest.raises(QueryError, match=r"^where '1=1\) OR \(1=1'"):
        s.query(report="normal chest", k=10, where="1=1) OR (1=1", split="valid")
    hits = s.query(report="normal chest", k=10, where="true --", split="valid")
    assert hits and {h.split for h in hits} == {"valid"}
    with pytest.raises(QueryError, match=r"^split 'test': .*train, valid"):
        s.query(report="normal chest", split="test")


def _query_valid(world, where: str):
    """`query --split valid --where WHERE --json` on the world's index."""
    return _run("query", "--index", "base", "--home", world["home"], "--report", "x",
                "--split", "valid", "--where", where, "--json")


@pytest.mark.parametrize("where", [
    "1=1) OR (1=1", "true /*", "1=1; DROP VIEW volumes", "foo(age) > 1", "age ~~~ 3",
    "sex > 5", "EXISTS (SELECT * FROM read_csv('/etc/passwd'))",
    "read_text('/etc/passwd') IS NOT NULL"])
def test_cli_where_errors_are_one_line_exit_2(world, where):
    res = _query_valid(world, where)
    assert res.exit_code == 2, res.output
    assert f"where {where!r}" in _said(res) and "Traceback" not in res.output
    assert res.stdout == ""  # no JSON, no partial answer


@pytest.mark.parametrize("where", [
    "true --", "true -- ) OR (true",
    "id IN (SELECT id FROM volumes WHERE split = 'train') OR true"])
def test_cli_where_comment_or_subquery_keeps_the_split(world, where):
    res = _query_valid(world, where)
    assert res.exit_code == 0, res.output
    hits = json.loads(res.stdout)
    assert hits and {h["split"] for h in hits} == {"valid"}


@pytest.mark.parametrize("args,needle", [
    (("--split", "test"), "split 'test'"), (("--k", "-3"), "k -3"), (("--k", "0"), "k 0")])
def test_cli_split_and_k_are_checked(world, args, needle):
    res = _run("query", "--index", "base", "--home", world["home"], "--report", "x", *args)
    assert res.exit_code == 2 and needle in _said(res) and "Traceback" not in res.output
    if "--split" in args:
        assert "train, valid" in _said(res)


# ------------------------------------------------------------------ damaged vectors, strict JSON

def _copy_index(world, tmp_path):
    shutil.copytree(world["home"] / "indexes" / "base", tmp_path / "indexes" / "base")
    return tmp_path, tmp_path / "indexes" / "base"


def _nan_embeddings(folder) -> None:
    table = pq.read_table(folder / VOLUMES)
    nan = np.full((table.num_rows, table.schema.field("embedding").type.list_size), np.nan,
                  np.float32)
    i = table.schema.get_field_index("embedding")
    pq.write_table(table.set_column(i, "embedding", embedding_array(nan)), folder / VOLUMES)


def test_nan_index_vectors_are_refused_never_printed(world, tmp_path):
    home, folder = _copy_index(world, tmp_path)
    vectors = folder / "vectors" / "volumes" / "vectors.npy"
    np.save(vectors, np.full_like(np.load(vectors), np.nan))
    res = _run("query", "--index", "base", "--home", home, "--report", "effusion", "--json")
    assert res.exit_code == 2 and "index 'base'" in _said(res) and "not finite" in _said(res)
    assert "NaN" not in res.stdout and "Traceback" not in res.output


def test_nan_embeddings_parquet_is_refused_for_like_and_detect(world, tmp_path):
    home, folder = _copy_index(world, tmp_path)
    _nan_embeddings(folder)
    name = pq.read_table(folder / VOLUMES, columns=["volume"]).column(0)[0].as_py()
    res = _run("query", "--index", "base", "--home", home, "--like", name, "--json")
    assert res.exit_code == 2 and "index 'base'" in _said(res) and "not finite" in _said(res)
    assert "NaN" not in res.stdout
    res = _run("detect", "--index", "base", "--home", home, "--all", "--json")
    assert res.exit_code == 2 and "index 'base'" in _said(res) and "not finite" in _said(res)
    assert "NaN" not in res.stdout


def test_a_model_with_nan_weights_is_refused_at_the_query(world):
    import torch

    from ctsearch.search import Encoder

    enc = Encoder.load(world["ckpt"])
    with torch.no_grad():
        for p in enc.model.parameters():
            p.fill_(float("nan"))
    s = Searcher("base", world["home"], encoder=enc)
    with pytest.raises(CTSearchError, match="not finite") as err:
        s.query(report="pleural effusion", k=3)
    assert world["ckpt"].name in str(err.value)


@pytest.mark.parametrize("part", ["embeddings/volumes.parquet", "embeddings/reports.parquet",
                                  "vectors/volumes/vectors.npy", "vectors/volumes/ids.npy"])
def test_a_truncated_index_file_is_one_line_naming_it(world, tmp_path, part):
    home, folder = _copy_index(world, tmp_path)
    (folder / part).write_bytes((folder / part).read_bytes()[:100])
    res = _run("query", "--index", "base", "--home", home, "--report", "effusion", "--json")
    assert res.exit_code == 2, res.output
    flat = "".join(res.output.split())
    named = folder / part if part.endswith(".parquet") else (folder / part).parent  # its backend
    assert "index'base'" in flat and f"{named}cannotberead" in flat
    assert "Traceback" not in res.output and res.stdout == ""

def test_a_damaged_prompt_cache_is_rebuilt_with_one_warning(world, tmp_path, caplog):
    from ctsearch.search.zeroshot import detect

    home, folder = _copy_index(world, tmp_path)
    s = Searcher("base", home)
    name = s.rows[0]["volume"]
    first = detect(s, ["Emphysema", "Cardiomegaly"], like=name)
    cache = next((folder / "prompts").glob("*.npy"))
    whole = cache.read_bytes()
    for damage in (whole[:60], b"garbage" * 10):
        cache.write_bytes(damage)
        caplog.clear()
        with caplog.at_level("WARNING"):
            assert detect(s, ["Emphysema", "Cardiomegaly"], like=name).equals(first)
        said = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
        assert len(said) == 1 and str(cache) in said[0] and "damaged" in said[0]
        assert cache.read_bytes() == whole  # rebuilt from the model, byte-identical

# ------------------------------------------------------------------ numeric and choice options

@pytest.fixture
def files(tmp_path):
    for name in ("r.csv", "l.csv"):
        (tmp_path / name).write_text("VolumeName\n")
    return tmp_path


TRAIN = ("train", "--data", "{tmp}", "--out", "{tmp}/run")
LABELS_TRAIN = ("labels", "train", "--reports", "{tmp}/r.csv", "--labels", "{tmp}/l.csv",
                "--out", "{tmp}/lab")
CLASSFINE = ("finetune", "classfine", "--index", "x", "--out", "{tmp}/h")
VOCABFINE = ("finetune", "vocabfine", "--index", "x", "--out", "{tmp}/h")


@pytest.mark.parametrize("command,option,value", [
    (TRAIN, "--epochs", "0"), (TRAIN, "--batch-size", "0"), (TRAIN, "--workers", "0"),
    (TRAIN, "--max-length", "1"), (TRAIN, "--augment", "-1"), (TRAIN, "--lr", "0"),
    (TRAIN, "--lr", "nan"), (TRAIN, "--text-lr", "-1e-3"),
    (LABELS_TRAIN, "--epochs", "0"), (LABELS_TRAIN, "--lr", "0"),
    (CLASSFINE, "--epochs", "0"), (CLASSFINE, "--lr", "-1"),
    (VOCABFINE, "--epochs", "0"), (VOCABFINE, "--lr", "inf"),
    (("bench", "preprocess"), "--n", "0"),
    (("bench", "encoder"), "--batch", "0"), (("bench", "encoder"), "--repeats", "0"),
    (("bench", "encoder"), "--presets", "tiny,huge"),
    (("bench", "search"), "--dim", "0"), (("bench", "search"), "--queries", "0"),
    (("bench", "search"), "--sizes", "1000,0"), (("bench", "search"), "--sizes", "1e5"),
    (("bench", "query"), "--n", "0"), (("bench", "query"), "--repeats", "0"),
    (("bench", "query"), "--cold-n", "0"), (("bench", "query"), "--cold-repeats", "-1"),
    (("bench", "query"), "--texts", "tiny,large"),
    (("bench", "detect", "--index", "x"), "--draws", "0"),
    (("demo", "--out", "{tmp}/demo"), "--n", "0"),
    (("demo", "--out", "{tmp}/demo"), "--workers", "0"),
    (("demo", "--out", "{tmp}/demo"), "--epochs", "-1"),
])
def test_out_of_range_options_exit_2_naming_the_option(files, command, option, value):
    args = [a.format(tmp=files) for a in command]
    res = _run(*args, option, value)
    assert res.exit_code == 2, res.output
    assert f"'{option}'" in _said(res) and "Traceback" not in res.output
    assert not (files / "run").exists() and not (files / "demo").exists()


# ------------------------------------------------------------------ batches: partial results

def test_labels_skips_a_non_utf8_report_row_and_exits_3(tmp_path):
    csv_path = tmp_path / "reports.csv"
    csv_path.write_bytes(b"VolumeName,ClinicalInformation_EN,Technique_EN,Findings_EN,"
                         b"Impressions_EN\na_1_a_1.nii.gz,x,y,Pleural effusion.,Effusion.\n"
                         b"b_1_a_1.nii.gz,x,y,Cardiomegaly \xff.,None.\n")
    res = _run("labels", "--reports", csv_path, "--out", tmp_path / "labels.csv")
    assert res.exit_code == 3 and "Traceback" not in res.output
    assert f"{csv_path}line3:columnFindings_ENisnotUTF-8" in "".join(res.output.split())
    written = (tmp_path / "labels.csv").read_text().splitlines()
    assert len(written) == 2 and written[1].startswith("a_1_a_1.nii.gz,")


def test_demo_with_a_failed_volume_exits_3_after_its_tables(tmp_path, monkeypatch):
    import ctsearch.demo as demo

    real = demo.preprocess_tree

    def after_a_damaged_file(root, *args, **kwargs):  # a real fault: one truncated volume
        victim = sorted(root.rglob("*.nii.gz"))[0]
        victim.write_bytes(victim.read_bytes()[:200])
        return real(root, *args, **kwargs)

    monkeypatch.setattr(demo, "preprocess_tree", after_a_damaged_file)
    res = _run("demo", "--out", tmp_path / "demo", "--n", "3", "--epochs", "0", "--workers", "1",
               "--home", tmp_path / "home")
    assert res.exit_code == 3, res.output
    assert "positive volumes per label" in res.output and "Traceback" not in res.output
    assert "1 of 3 volume(s) failed" in _said(res)

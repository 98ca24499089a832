"""`ctsearch index build|merge|info` and `ctsearch query` through Typer's CliRunner."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from ctsearch.cli.main import app
from ctsearch.search.query import RESULT_KEYS

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_build_info_and_query_table(world, tmp_path):
    home = tmp_path / "home"
    res = _run("index", "build", "--data", world["data"], "--model", world["ckpt"], "--name",
               "cli", "--home", home, "--workers", "1")
    assert res.exit_code == 0, res.output
    assert "volumes" in res.output and "10" in res.output
    res = _run("index", "build", "--name", "cli", "--home", home, "--workers", "1")
    assert res.exit_code == 0 and "encoded now" in res.output  # re-run from index.json alone
    res = _run("index", "info", "cli", "--home", home)
    assert res.exit_code == 0 and '"dim": 128' in res.output
    written = json.loads((home / "indexes/cli/index.json").read_text())
    written.pop("failed")
    shown = json.loads(res.stdout)
    assert shown == written and list(shown) == list(written)  # index.json less `failed`
    res = _run("query", "--index", "cli", "--home", home, "--report", "pleural effusion",
               "--k", "3")
    assert res.exit_code == 0, res.output
    assert "cli: report 'pleural effusion'" in res.output


def _common_label(world) -> str:
    from ctsearch.data.schema import PATHOLOGIES
    from ctsearch.search import Searcher

    rows = Searcher("base", world["home"]).rows
    return max(PATHOLOGIES, key=lambda p: sum(r[p] == 1 and r["split"] == "train" for r in rows))


def test_query_json_schema_is_stable(world):
    label = _common_label(world)
    res = _run("query", "--index", "base", "--home", world["home"], "--report", "emphysema",
               "--k", "4", "--json", "--label", label, "--split", "train",
               "--where", "age >= 0", "--per-scan")
    assert res.exit_code == 0, res.output
    hits = json.loads(res.stdout)
    assert hits and all(list(h) == list(RESULT_KEYS) for h in hits)
    assert all(label in h["findings"] and h["split"] == "train" for h in hits)
    assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1))


def test_query_json_is_the_hits_of_today(world):
    """`--json` output, byte for byte: the objects built here from the index tables alone."""
    import pyarrow.parquet as pq

    from ctsearch.data.schema import PATHOLOGIES
    from ctsearch.search import Searcher
    from ctsearch.search.store import REPORTS

    s = Searcher("base", world["home"])
    q = s.encoder.encode_text(["emphysema"])[0]
    order = sorted(range(len(s.rows)), key=lambda i: -float(s.vectors[i] @ q))[:5]
    text = dict(zip(*(pq.read_table(world["home"] / "indexes/base" / REPORTS).column(c)
                      .to_pylist() for c in ("volume", "text")), strict=True))
    expect = []
    for rank, i in enumerate(order, 1):
        r = s.rows[i]
        expect.append({"rank": rank, "volume": r["volume"], "score": round(float(
            s.vectors[i] @ q), 6), **{c: r[c] for c in (
                "scan", "patient", "split", "reconstruction", "age", "sex", "manufacturer",
                "model_name", "kernel")}, "findings": [p for p in PATHOLOGIES if r[p] == 1],
            "report": text[r["volume"]]})
    res = _run("query", "--index", "base", "--home", world["home"], "--report", "emphysema",
               "--k", "5", "--json")
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert [list(h) for h in got] == [list(RESULT_KEYS)] * 5
    assert [h["volume"] for h in got] == [h["volume"] for h in expect]
    for h, e in zip(got, expect, strict=True):
        assert h["score"] == pytest.approx(e["score"], abs=1e-5)
        h["score"] = e["score"]
    assert got == expect
    assert res.stdout == json.dumps(got, default=str) + "\n"  # the layout of json.dumps


def test_like_by_volume_name(world):
    from ctsearch.search import Searcher

    name = Searcher("base", world["home"]).rows[2]["volume"]
    res = _run("query", "--index", "base", "--home", world["home"], "--like", name, "--json")
    assert res.exit_code == 0 and name not in [h["volume"] for h in json.loads(res.stdout)]


def test_volume_file_query_matches_the_indexed_embedding(world):
    from ctsearch.search import Searcher

    s = Searcher("base", world["home"])
    path = next(world["data"].rglob(s.rows[5]["volume"]))
    res = _run("query", "--index", "base", "--home", world["home"], "--volume", path, "--json",
               "--k", "1")
    assert res.exit_code == 0, res.output
    top = json.loads(res.stdout)[0]
    assert top["volume"] == s.rows[5]["volume"] and top["score"] == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("args,msg", [
    (("--index", "nope", "--report", "x"), "unknown index 'nope'"),
    (("--index", "base", "--like", "missing.nii.gz"),
     "unknown volume 'missing.nii.gz' in index 'base'"),
    (("--index", "base", "--report", " "), "report text is empty"),
    (("--index", "base", "--report", "x", "--k", "0"), "k 0: must be at least 1"),
    (("--index", "base", "--report", "x", "--target", "voxels"), "'voxels' is not one of"),
    (("--index", "base", "--report", "x", "--where", "age >"), "does not parse"),
    (("--index", "base", "--report", "x", "--where", "weight > 3"), "unknown column 'weight'"),
])
def test_query_errors_exit_2(world, args, msg):
    res = _run("query", "--home", world["home"], *args)
    assert res.exit_code == 2 and msg in " ".join(res.output.split())


def test_query_with_another_model_is_refused(world):
    res = _run("query", "--index", "base", "--home", world["home"], "--report", "x", "--model",
               world["other"])
    assert res.exit_code == 2 and "built with model" in res.output


def test_build_errors_exit_2(world, tmp_path):
    res = _run("index", "build", "--name", "new", "--home", tmp_path)
    assert res.exit_code == 2 and "give data and model" in res.output
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    res = _run("index", "build", "--data", world["data"], "--model", bad, "--name", "x",
               "--home", tmp_path)
    assert res.exit_code == 2 and "bad.pt" in res.output
    res = _run("index", "build", "--data", world["data"], "--model", world["ckpt"], "--name",
               "x", "--home", tmp_path, "--shard", "3/2")
    assert res.exit_code == 2 and "shard '3/2'" in res.output
    res = _run("index", "build", "--data", world["data"], "--model", world["ckpt"], "--name",
               "x", "--home", tmp_path, "--text-field", "findngs")
    said = " ".join(res.output.split())
    assert res.exit_code == 2 and "'findngs' is not one of" in said
    assert all(f"'{name}'" in said for name in ("findings", "impressions", "both"))
    assert not (tmp_path / "indexes").exists()

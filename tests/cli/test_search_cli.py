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
    (("--index", "base", "--like", "missing.nii.gz"), "missing.nii.gz"),
    (("--index", "base", "--report", " "), "empty"),
    (("--index", "base", "--report", "x", "--where", "age >"), "does not parse"),
    (("--index", "base", "--report", "x", "--where", "weight > 3"), "unknown column 'weight'"),
])
def test_query_errors_exit_2(world, args, msg):
    res = _run("query", "--home", world["home"], *args)
    assert res.exit_code == 2 and msg in res.output


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

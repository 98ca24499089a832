"""The Typer CLI: help for every group, preprocess exit codes, case table export."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from ctsearch.cli.main import app

runner = CliRunner()


def _flat(output: str) -> str:
    """Typer's usage-error box as one line of words (the box wraps at the terminal width)."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


@pytest.mark.parametrize("group", [[], ["data"], ["bench"], ["preprocess"], ["demo"], ["train"],
                                   ["data", "synth"], ["bench", "preprocess"]])
def test_help(group):
    result = runner.invoke(app, [*group, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_preprocess_command_ok_then_failure_exit_code(mini_tree, tmp_path):
    out = tmp_path / "pre"
    args = ["preprocess", "--data", str(mini_tree["root"]), "--out", str(out),
            "--preset", "tiny", "--workers", "1"]
    ok = runner.invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert json.loads((out / "preprocess.json").read_text())["counts"]["done"] == 3
    bad = mini_tree["root"] / "dataset/valid_fixed/valid_7/valid_7_a/valid_7_a_1.nii.gz"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a nifti at all" * 30)
    failed = runner.invoke(app, args)
    assert failed.exit_code == 3  # EXIT_PARTIAL: the batch finished, one volume failed
    assert "1 volume(s) failed" in failed.output
    counts = json.loads((out / "preprocess.json").read_text())["counts"]
    assert counts == {"done": 0, "skipped": 3, "failed": 1}


def test_unknown_preset_is_one_line(mini_tree, tmp_path):
    result = runner.invoke(app, ["preprocess", "--data", str(mini_tree["root"]), "--out",
                                 str(tmp_path / "p"), "--preset", "huge"])
    assert result.exit_code == 2
    assert "'huge' is not one of 'paper', 'half', 'quarter', 'tiny'" in _flat(result.output)
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("args,allowed", [
    (["data", "cases", "--intensity", "v3"], "'v3' is not one of 'v1', 'v2', 'hu', 'auto'"),
    (["preprocess", "--intensity", "V1"], "'V1' is not one of 'v1', 'v2', 'hu', 'auto'"),
    (["train", "--preset", "huge"], "'huge' is not one of 'paper', 'tiny'"),
    (["train", "--text-field", "findngs"],
     "'findngs' is not one of 'findings', 'impressions', 'both'"),
])
def test_mode_typo_is_a_usage_error_naming_the_choices(mini_tree, tmp_path, args, allowed):
    out = ["--out", str(tmp_path / "out")]
    result = runner.invoke(app, [*args, "--data", str(mini_tree["root"]), *out])
    assert result.exit_code == 2 and allowed in _flat(result.output), result.output
    assert not (tmp_path / "out").exists()


def test_data_cases_forced_intensity(mini_tree, tmp_path):
    from ctsearch.data import read_cases

    out = tmp_path / "cases.parquet"
    result = runner.invoke(app, ["data", "cases", "--data", str(mini_tree["root"]), "--out",
                                 str(out), "--intensity", "v2"])
    assert result.exit_code == 0, result.output
    rows = read_cases(out).to_pylist()
    assert {(r["intensity_version"], r["intensity_source"]) for r in rows} == {("v2", "override")}


def test_data_cases_writes_parquet(mini_tree, tmp_path):
    out = tmp_path / "cases.parquet"
    result = runner.invoke(app, ["data", "cases", "--data", str(mini_tree["root"]), "--out",
                                 str(out)])
    assert result.exit_code == 0, result.output
    assert "3 volumes" in result.output and out.exists()


def test_synth_then_demo_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("CTSEARCH_HOME", str(tmp_path / "home"))
    result = runner.invoke(app, ["data", "synth", "--out", str(tmp_path / "s"), "--n", "3",
                                 "--workers", "1", "--seed", "2"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "s/dataset").rglob("*.nii.gz"))) == 3
    demo = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--n", "6",
                               "--epochs", "1", "--workers", "1"])
    assert demo.exit_code == 0, demo.output
    assert "preprocessed" in demo.output and "positive volumes per label" in demo.output
    report = json.loads((tmp_path / "demo/preprocessed/preprocess.json").read_text())
    counts = report["counts"]  # training re-checks the cache: all skipped the second time
    assert counts["done"] + counts["skipped"] == 6 and counts["failed"] == 0
    assert "R@5" in demo.output and (tmp_path / "demo/run/model.pt").exists()
    assert "index demo: report 'pleural effusion'" in demo.output
    info = json.loads((tmp_path / "home/indexes/demo/index.json").read_text())
    assert info["model_path"].endswith("run/model.pt")  # the last epoch, not one picked on valid


def test_preprocess_default_home(mini_tree, tmp_path, monkeypatch):
    monkeypatch.setenv("CTSEARCH_HOME", str(tmp_path / "home"))
    result = runner.invoke(app, ["preprocess", "--data", str(mini_tree["root"]), "--preset",
                                 "tiny", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "home/preprocessed/preprocess.json").exists()


def test_expected_error_is_one_line_and_a_bug_shows_its_traceback(mini_tree, tmp_path,
                                                                  monkeypatch):
    args = ["data", "cases", "--data", str(mini_tree["root"]), "--out", str(tmp_path / "c.pq")]
    import ctsearch.data as data_pkg
    from ctsearch.errors import DataError

    def expected(*a, **k):
        raise DataError("cases.csv: missing column 'VolumeName'")

    monkeypatch.setattr(data_pkg, "read_any", expected)
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and res.output.strip().splitlines() == [
        "error: cases.csv: missing column 'VolumeName'"]
    debug = runner.invoke(app, ["--debug", *args])
    assert debug.exit_code == 2 and "Traceback" in debug.output and "expected" in debug.output

    def bug(*a, **k):
        return [][1]  # a genuine bug (IndexError), or a numpy ValueError, is not an input error

    monkeypatch.setattr(data_pkg, "read_any", bug)
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and isinstance(res.exception, IndexError)
    monkeypatch.setattr(data_pkg, "read_any", lambda *a, **k: int("x"))  # plain ValueError
    res = runner.invoke(app, args)
    assert res.exit_code == 1 and isinstance(res.exception, ValueError)


@pytest.mark.parametrize("args, allowed", [
    (["data", "synth", "--out", "x", "--size", "huge"], "'small', 'full'"),
    (["data", "synth", "--out", "x", "--intensity", "v3"], "'v1', 'v2'"),
    (["export", "tsne", "--index", "i", "--out", "x", "--kind", "all"],
     "'volumes', 'reports', 'both'"),
])
def test_phantom_and_export_modes_are_closed_sets(args, allowed):
    res = runner.invoke(app, args)
    assert res.exit_code == 2 and allowed in _flat(res.output), res.output


def test_synth_library_rejects_an_unknown_size(tmp_path):
    from ctsearch.data.phantom import synth
    from ctsearch.errors import UsageError

    with pytest.raises(UsageError, match="phantom size 'huge': choose one of small, full"):
        synth(tmp_path, 2, size="huge")
    assert not (tmp_path / "dataset").exists()

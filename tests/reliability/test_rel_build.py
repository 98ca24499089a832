"""`index build` / `index merge` under hostile conditions: races, vanished data, bad weights."""

from __future__ import annotations

import csv
import errno
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from typer.testing import CliRunner

from ctsearch.cli.main import app
from ctsearch.errors import (
    DataError,
    DiskFull,
    IndexLocked,
    ModelError,
    QueryError,
    RemovalRefused,
    UsageError,
)
from ctsearch.search import Searcher, build_index, merge_shards
from ctsearch.search.store import REPORTS, VOLUMES, column_matrix

runner = CliRunner()


def _cli(*args) -> object:
    return runner.invoke(app, [str(a) for a in args])


def _said(res) -> str:
    return " ".join(res.output.split())


def _squeezed(text: str) -> str:
    """`text` without any whitespace: a long path the console wrapped reads whole again."""
    return "".join(text.split())


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (relative path -> bytes) but build locks (which stay, empty)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.suffix != ".lock"}


def _home(world, tmp_path: Path) -> Path:
    """A copy of the world's home: the index `base` (10 volumes) + the preprocessed cache."""
    home = tmp_path / "home"
    shutil.copytree(world["home"], home)
    return home


def _volumes(home: Path, name: str) -> list[str]:
    return pq.read_table(home / "indexes" / name / VOLUMES).column("volume").to_pylist()


# -- 1. concurrent builds ------------------------------------------------------------------------

# The first build stops after its first encoded batch until the test creates GO: the second
# build then surely runs while the first holds the index (no timing involved).
_GATED = """
import sys, time
from pathlib import Path
import ctsearch.search.parts as parts
from ctsearch.cli.main import app
go, real, seen = Path(sys.argv[1]), parts.encode_batch, []
def gated(*args):
    out = real(*args)
    seen.append(1)
    deadline = time.time() + 120
    while len(seen) == 1 and not go.exists() and time.time() < deadline:
        time.sleep(0.05)
    return out
parts.encode_batch = gated
app(sys.argv[2:], prog_name="ctsearch")
"""


@pytest.fixture(scope="module")
def three(world, tmp_path_factory) -> Path:
    """The world's data with 3 of its 10 volumes: a build of a few seconds."""
    data = tmp_path_factory.mktemp("three") / "data"
    shutil.copytree(world["data"], data)
    for f in sorted(data.rglob("*.nii.gz"))[3:]:
        f.unlink()
    return data


def _names(data: Path) -> list[str]:
    return sorted(f.name for f in data.rglob("*.nii.gz"))


def _build_args(world, data: Path, home: Path, *extra) -> list[str]:
    return ["index", "build", "--data", str(data), "--model", str(world["ckpt"]),
            "--name", "race", "--home", str(home), "--workers", "1", "--batch-size", "1",
            "--rebuild", *extra]


def _start_gated(world, data: Path, home: Path, go: Path) -> subprocess.Popen:
    """The first build, held after its first batch (when it holds the lock) until `go`."""
    proc = subprocess.Popen([sys.executable, "-c", _GATED, str(go),
                             *_build_args(world, data, home)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    while not list(home.glob("work/race-*/part-*.parquet")) and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()[0]
    return proc


def _cli_proc(args: list[str], **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ctsearch.cli.main", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_a_second_build_of_one_index_stops_naming_the_holder(world, three, tmp_path):
    home, go = _home(world, tmp_path), tmp_path / "go"
    first = _start_gated(world, three, home, go)
    second = _cli_proc(_build_args(world, three, home))
    said = second.communicate(timeout=300)[0]
    go.touch()
    out = first.communicate(timeout=300)[0]
    assert first.returncode == 0, out
    assert second.returncode == 2, said
    line = " ".join(said.split())
    assert f"index 'race' is being built by pid {first.pid} on host {socket.gethostname()}" \
        in line and "since 20" in line and "Traceback" not in said
    assert sorted(_volumes(home, "race")) == _names(three)  # all of them


def test_with_wait_the_second_build_waits_and_both_finish(world, three, tmp_path):
    home, go = _home(world, tmp_path), tmp_path / "go"
    first = _start_gated(world, three, home, go)
    second = _cli_proc(_build_args(world, three, home, "--wait"))
    said = []
    for line in second.stdout:  # the second build says once that it waits, naming the holder
        said.append(line)
        if "waiting" in line:
            break
    assert f"pid {first.pid}" in " ".join("".join(said).split()), said
    go.touch()
    out = first.communicate(timeout=300)[0]
    rest = second.communicate(timeout=300)[0]
    assert first.returncode == 0, out
    assert second.returncode == 0, "".join(said) + rest
    assert sorted(_volumes(home, "race")) == _names(three)
    assert (home / "indexes/.race.lock").read_text() == ""  # released cleanly
    assert not list(home.glob("work/race-*"))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_stale_lock_of_a_dead_process_is_taken_over(world, tmp_path, caplog):
    home = _home(world, tmp_path)
    pid = _dead_pid()
    (home / "indexes/.base.lock").write_text(json.dumps(
        {"pid": pid, "host": "oldhost", "started": "2024-01-02T03:04:05+0000",
         "command": "ctsearch index build --name base"}))
    with caplog.at_level("WARNING"):
        info = build_index(None, None, "base", home=home, workers=1)
    assert info.counts.volumes == 10
    taken = [r.getMessage() for r in caplog.records if "taking over" in r.getMessage()]
    assert len(taken) == 1 and f"pid {pid} on host oldhost since 2024-01-02T03:04:05" in taken[0]
    assert (home / "indexes/.base.lock").read_text() == ""


def test_a_held_lock_refuses_build_and_merge_or_times_out(world, tmp_path):
    from ctsearch.search.lock import index_lock

    home = _home(world, tmp_path)
    before = _snapshot(home / "indexes/base")
    with index_lock(home / "indexes/base"):
        with pytest.raises(IndexLocked, match=rf"^index 'base' is being built by pid "
                                              rf"{os.getpid()} on host "):
            build_index(None, None, "base", home=home, workers=1)
        with pytest.raises(IndexLocked, match=r"still being built by pid .* after waiting"):
            build_index(None, None, "base", home=home, workers=1, wait=True, wait_timeout=0.3)
        with pytest.raises(IndexLocked, match="index 'base' is being built"):
            merge_shards("base", home)
        res = _cli("index", "build", "--name", "base", "--home", home, "--wait-timeout", "0.2")
        assert res.exit_code == 2 and "still being built by pid" in _said(res)
    assert _snapshot(home / "indexes/base") == before


# -- 2. empty or vanished data -------------------------------------------------------------------

def test_an_empty_data_folder_is_refused_and_changes_nothing(world, tmp_path):
    home, empty = _home(world, tmp_path), tmp_path / "empty"
    empty.mkdir()
    before = _snapshot(home)
    with pytest.raises(RemovalRefused, match=r"index 'base' has 10 volumes: this build would "
                                             r"remove 10 and keep 0"):
        build_index(empty, world["ckpt"], "base", home=home, workers=1)
    res = _cli("index", "build", "--name", "base", "--home", home, "--data", empty)
    assert res.exit_code == 2 and "would remove 10 and keep 0" in _said(res)
    assert "Traceback" not in res.output
    assert _snapshot(home) == before  # index, preprocessed cache and lock: byte-identical


def test_a_data_root_that_lost_its_volumes_is_refused_unless_allowed(world, tmp_path):
    data, home = tmp_path / "data", tmp_path / "home"
    shutil.copytree(world["data"], data)
    shutil.copytree(world["home"] / "preprocessed", home / "preprocessed")
    build_index(data, world["ckpt"], "v", home=home, workers=1)
    files = sorted(data.rglob("*.nii.gz"))
    for f in files[:2]:  # 2 of 10 (20% > 10%)
        f.unlink()
    before = _snapshot(home / "indexes")
    res = _cli("index", "build", "--name", "v", "--home", home, "--workers", "1")
    said = _said(res)
    assert res.exit_code == 2 and "index 'v' has 10 volumes: this build would remove 2 and " \
        "keep 8" in said and "Traceback" not in res.output
    assert _snapshot(home / "indexes") == before
    res = _cli("index", "build", "--name", "v", "--home", home, "--workers", "1",
               "--allow-remove")
    assert res.exit_code == 0, res.output
    assert sorted(_volumes(home, "v")) == sorted(f.name for f in files[2:])


def test_a_new_index_from_a_folder_without_volumes_is_a_data_error(world, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=f"^no volumes found under {re.escape(str(empty))}$"):
        build_index(empty, world["ckpt"], "new", home=tmp_path / "home", workers=1)
    assert not (tmp_path / "home/indexes/new").exists()


# -- 3. diverged weights -------------------------------------------------------------------------

def _edited_checkpoint(world, tmp_path: Path, name: str, edit) -> Path:
    """A copy of the world's checkpoint (tokenizer beside it) with its state dict edited."""
    folder = tmp_path / name
    shutil.copytree(world["ckpt"].parent, folder)
    path = folder / world["ckpt"].name
    blob = torch.load(path, weights_only=True)
    edit(blob["state_dict"])
    torch.save(blob, path)
    return path


def _nan_weights(sd: dict) -> None:
    keys = [k for k in sd if k.startswith("visual_transformer.") and sd[k].is_floating_point()]
    for k in keys[2:5]:  # three tensors diverged
        sd[k] = sd[k].clone()
        sd[k].view(-1)[0] = float("nan")
    sd[keys[4]].view(-1)[-1] = float("inf")


def test_nan_weights_are_refused_at_load(world, tmp_path):
    ckpt = _edited_checkpoint(world, tmp_path, "nan", _nan_weights)
    home = _home(world, tmp_path)
    before = _snapshot(home / "indexes")
    bad = rf"^{re.escape(str(ckpt))}: 3 tensors hold NaN or inf weights \(first visual_trans"
    with pytest.raises(ModelError, match=bad) as err:
        build_index(world["data"], ckpt, "base", home=home, workers=1)
    assert "diverged" in str(err.value)
    assert _snapshot(home / "indexes") == before
    res = _cli("index", "build", "--name", "nan", "--home", home, "--data", world["data"],
               "--model", ckpt, "--workers", "1")
    assert res.exit_code == 2 and "3 tensors hold NaN or inf weights" in _said(res)
    assert not (home / "indexes/nan").exists()


def test_non_finite_embeddings_are_refused_at_build(world, tmp_path):
    def huge(sd: dict) -> None:  # finite weights whose projection overflows float32
        sd["to_visual_latent.weight"] = torch.full_like(sd["to_visual_latent.weight"], 3e38)

    ckpt = _edited_checkpoint(world, tmp_path, "huge", huge)
    home = _home(world, tmp_path)
    before = _snapshot(home / "indexes")
    bad = rf"^{re.escape(str(ckpt))}: the model produced NaN or inf volume embeddings for \S+gz"
    with pytest.raises(ModelError, match=bad):
        build_index(world["data"], ckpt, "base", home=home, workers=1)
    assert _snapshot(home / "indexes") == before


# -- 4. / 5. one empty report, exit codes, argument checks ---------------------------------------

def _blank_report(data: Path) -> str:
    """Empty the findings and impressions of one report; returns its volume name."""
    csv_path = data / "dataset/radiology_text_reports/train_reports.csv"
    with open(csv_path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows[0].update(Findings_EN="", Impressions_EN="")
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows[0]["VolumeName"]


def test_one_empty_report_keeps_its_volume_for_image_search(world, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(world["data"], data)
    name = _blank_report(data)
    home = _home(world, tmp_path)
    res = _cli("index", "build", "--name", "e", "--home", home, "--data", data, "--model",
               world["ckpt"], "--workers", "1")
    said = _said(res)
    assert res.exit_code == 0, res.output
    assert "1 volume(s) have no report text (text field findings)" in said
    assert sorted(_volumes(home, "e")) == sorted(_volumes(home, "base"))
    reports = pq.read_table(home / "indexes/e" / REPORTS).column("volume").to_pylist()
    assert name not in reports and len(reports) == len(_volumes(home, "base")) - 1
    info = json.loads((home / "indexes/e/index.json").read_text())
    assert info["counts"]["reports"] == info["counts"]["volumes"] - 1 and not info["failed"]
    searcher = Searcher("e", home)
    assert len(searcher.query(like=name, k=3)) == 3  # searchable by its image
    with pytest.raises(QueryError, match=f"volume '{name}' has no report"):
        searcher.query(like=name, k=1, target="reports")


def test_a_corrupt_volume_costs_only_itself_and_exits_3(world, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(world["data"], data)
    victim = sorted(data.rglob("*.nii.gz"))[0]
    victim.write_bytes(victim.read_bytes()[:300])
    home = tmp_path / "home"
    res = _cli("index", "build", "--name", "c", "--home", home, "--data", data, "--model",
               world["ckpt"], "--workers", "1")
    said = _said(res)
    assert res.exit_code == 3, res.output
    assert victim.name in said and "Traceback" not in res.output
    assert said.index("encoded now") < said.index("1 volume(s) failed; see")
    assert sorted(_volumes(home, "c")) == sorted(n for n in _names(data) if n != victim.name)


@pytest.mark.parametrize("arg", ["--batch-size", "--workers"])
def test_zero_batch_size_or_workers_is_a_usage_error(world, tmp_path, arg):
    res = _cli("index", "build", "--name", "z", "--home", tmp_path, "--data", world["data"],
               "--model", world["ckpt"], arg, "0")
    assert res.exit_code == 2 and arg in _said(res) and "Traceback" not in res.output
    key = arg.removeprefix("--").replace("-", "_")
    with pytest.raises(UsageError, match=f"^{key} must be at least 1, got 0$"):
        build_index(world["data"], world["ckpt"], "z", home=tmp_path, **{key: 0})
    assert not (tmp_path / "indexes/z").exists()


# -- 6. self-healing cache -----------------------------------------------------------------------

def _cache_files(home: Path) -> dict[str, Path]:
    """volume -> its cached .npy in HOME/preprocessed."""
    from ctsearch.data.pipeline import cache_file

    rows = pq.read_table(home / "preprocessed/index.parquet").to_pylist()
    return {r["volume"]: cache_file(home / "preprocessed", r["key"]) for r in rows}


def test_a_damaged_cache_file_is_rebuilt_at_build(world, tmp_path, caplog):
    home = _home(world, tmp_path)
    volume, file = sorted(_cache_files(home).items())[3]
    raw = bytearray(file.read_bytes())
    header = raw.index(b"\n") + 1  # keep the .npy header: only the checksum can tell
    raw[header:] = np.random.default_rng(0).bytes(len(raw) - header)
    file.write_bytes(bytes(raw))
    with caplog.at_level("WARNING"):
        info = build_index(None, None, "base", home=home, workers=1, rebuild=True)
    assert info.counts.volumes == 10 and info.counts.failed == 0
    warned = [r.getMessage() for r in caplog.records if volume in r.getMessage()]
    assert len(warned) == 1 and "checksum" in warned[0], warned
    fresh, clean = [pq.read_table(h / "indexes/base" / VOLUMES) for h in (home, world["home"])]
    assert fresh.column("volume").to_pylist() == clean.column("volume").to_pylist()
    np.testing.assert_allclose(column_matrix(fresh, "embedding"),
                               column_matrix(clean, "embedding"), atol=1e-6)


# -- 7. disk full --------------------------------------------------------------------------------

def test_disk_full_while_writing_the_index_names_the_path(world, tmp_path, monkeypatch):
    home = _home(world, tmp_path)
    before = _snapshot(home / "indexes")
    real = pq.write_table

    def full(table, where, *args, **kwargs):
        if ".base.tmp-" in str(where) and str(where).endswith(REPORTS.split("/")[-1]):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(table, where, *args, **kwargs)

    monkeypatch.setattr(pq, "write_table", full)
    with pytest.raises(DiskFull, match=rf"^{re.escape(str(home / 'indexes/base'))}: disk full"):
        build_index(None, None, "base", home=home, workers=1)
    res = _cli("index", "build", "--name", "base", "--home", home, "--workers", "1")
    said = _said(res)
    assert res.exit_code == 2 and "disk full" in said and "MiB free" in said, res.output
    assert str(home / "indexes/base") in _squeezed(res.output) and "Traceback" not in res.output
    assert _snapshot(home / "indexes") == before
    assert not list((home / "indexes").glob(".base.tmp-*"))
    assert len(Searcher("base", home).query(report="effusion", k=3)) == 3


def test_a_plain_nifti_folder_indexes_for_image_search(world, tmp_path):
    from conftest import chest_hu, lps_affine, write_nifti

    plain = tmp_path / "plain"
    for i in range(4):
        write_nifti(plain / f"case{i}" / "ct.nii.gz", chest_hu(seed=i),
                    lps_affine((8.0, 8.0, 10.0)))
    home = tmp_path / "home"
    res = _cli("index", "build", "--name", "p", "--home", home, "--data", plain, "--model",
               world["ckpt"], "--workers", "1")
    assert res.exit_code == 0, res.output
    assert "4 volume(s) have no report text" in _said(res)
    info = json.loads((home / "indexes/p/index.json").read_text())
    assert info["counts"]["volumes"] == 4 and info["counts"]["reports"] == 0
    searcher = Searcher("p", home)
    first = searcher.rows[0]["volume"]
    assert len(searcher.query(like=first, k=2)) == 2
    assert len(searcher.query(report="Pleural effusion.", k=4)) == 4
    res = _cli("query", "--index", "p", "--home", home, "--report", "Effusion.", "--target",
               "reports")
    assert res.exit_code == 2 and "no report" in _said(res), res.output


# in a private mount namespace: the world's home copied onto a 64 MiB tmpfs, then filled up to
# its last 64 KiB; a --rebuild of the index `base` runs out of space
_FULL_HOME = """
mount -t tmpfs -o size=64m tmpfs "$H" || exit 90
cp -a "$SRC"/. "$H"/ && cp -a "$H"/indexes "$BEFORE" || exit 91
free=$(df --output=avail -B1 "$H" | tail -1)
fallocate -l $((free - 65536)) "$H/filler" || exit 92
"$PY" -m ctsearch.cli.main index build --name base --home "$H" --rebuild --workers 1 \
    >"$LOG" 2>&1
echo $? >"$RC"
rm "$H/filler" && cp -a "$H"/indexes "$AFTER"
find "$H" -name '.*' -type f ! -name '*.lock' >"$HIDDEN"
"""


def test_index_build_on_a_full_real_filesystem(world, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs tmpfs '{home}'"],
                           capture_output=True, text=True) if shutil.which("unshare") else None
    if probe is None or probe.returncode:
        pytest.skip("cannot mount a small tmpfs here (needs unshare -rm)")
    files = {k: tmp_path / k for k in ("before", "after", "log", "rc", "hidden")}
    env = {**os.environ, "PY": sys.executable, "H": str(home), "SRC": str(world["home"]),
           **{k.upper(): str(v) for k, v in files.items()}}
    res = subprocess.run(["unshare", "-rm", "sh", "-c", _FULL_HOME], env=env,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    log = files["log"].read_text()
    assert int(files["rc"].read_text()) == 2, log
    [line] = [ln for ln in log.splitlines() if "error:" in ln]
    assert f"{home}/" in line and "disk full" in line and "MiB free" in line, log
    assert "Traceback" not in log
    assert _snapshot(files["after"]) == _snapshot(files["before"])  # the index is untouched
    assert files["hidden"].read_text() == ""  # no temp file, no staging folder left

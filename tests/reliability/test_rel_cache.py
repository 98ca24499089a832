"""The preprocessing cache heals itself; kill -9, disk full and bugs never lose or block data."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from ctsearch.cli.main import app
from ctsearch.cli.ui import EXIT_OK, EXIT_PARTIAL, EXIT_USAGE
from ctsearch.data import cache as C
from ctsearch.data import open_preprocessed, preprocess_tree, preset
from ctsearch.data import pipeline as P
from ctsearch.errors import DataError, DiskFull, UsageError
from ctsearch.fsutil import TEMP_MARK

from conftest import chest_hu, lps_affine, write_nifti

TINY = preset("tiny")
runner = CliRunner()


def _plain(folder: Path, n: int, start: int = 0) -> Path:
    """A plain folder of `n` small HU volumes (distinct content)."""
    for i in range(start, start + n):
        hu = np.round(chest_hu(seed=i)).astype(np.int16)
        write_nifti(folder / f"vol_{i}.nii.gz", hu, lps_affine((1.0, 1.0, 2.5)))
    return folder


def _temps(out: Path) -> list[Path]:
    return [p for p in out.rglob(f"*{TEMP_MARK}*")]


def _npys(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*.npy")}


def _files(out: Path) -> dict[str, str]:
    return {r["volume"]: r["file"] for r in pq.read_table(out / "index.parquet").to_pylist()}


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "ctsearch.cli.main", *map(str, args)]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "CTSEARCH_HOME": str(tmp_path / "home"), "COLUMNS": "400"}


def _says(res, *needles: str) -> bool:
    """Whether the CLI output holds every needle, whatever rich's line wrapping did."""
    text = "".join(res.output.split())
    return all("".join(n.split()) in text for n in needles)


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.fixture
def built(mini_tree, tmp_path):
    """A finished run over the mini tree: (root, out, {volume: cache file})."""
    out = tmp_path / "pre"
    preprocess_tree(mini_tree["root"], out, TINY)
    return mini_tree["root"], out, _files(out)


@pytest.mark.parametrize("stat_cache", [True, False], ids=["stat-fast-path", "by-content"])
def test_truncated_cache_file_is_rebuilt_with_one_warning(built, caplog, stat_cache):
    root, out, files = built
    victim = Path(files["train_1_a_2.nii.gz"])
    good = victim.read_bytes()
    victim.write_bytes(good[: len(good) // 2])
    if not stat_cache:
        (out / "stat_cache.json").unlink()
    run = preprocess_tree(root, out, TINY)
    assert run.ok and run.done == ["train_1_a_2.nii.gz"] and len(run.skipped) == 2
    assert victim.read_bytes() == good
    [warning] = _warnings(caplog)
    assert "train_1_a_2.nii.gz" in warning and f"truncated: {len(good) // 2} of" in warning
    assert preprocess_tree(root, out, TINY).done == []  # healed for good


def test_same_size_garbage_is_found_by_verify(built):
    root, out, files = built
    victim = Path(files["valid_2_a_1.nii.gz"])
    good = victim.read_bytes()
    victim.write_bytes(good[:128] + bytes(reversed(good[128:])))  # header intact, data wrong
    assert P.verify_cache_file(victim) is None  # the cheap check cannot see this
    assert P.verify_cache_file(victim, full=True) == "checksum mismatch"
    args = ["preprocess", "--data", str(root), "--out", str(out), "--preset", "tiny",
            "--workers", "1", "--verify"]
    res = runner.invoke(app, args)
    assert res.exit_code == EXIT_OK, res.output
    assert victim.read_bytes() == good
    counts = json.loads((out / "preprocess.json").read_text())["counts"]
    assert counts == {"done": 1, "skipped": 2, "failed": 0}
    assert _says(res, "valid_2_a_1.nii.gz", "checksum mismatch")


def test_overwritten_header_is_rebuilt_without_verify(built, caplog):
    root, out, files = built
    victim = Path(files["train_1_a_1.nii.gz"])
    good = victim.read_bytes()
    victim.write_bytes(os.urandom(len(good)))
    run = preprocess_tree(root, out, TINY)
    assert run.done == ["train_1_a_1.nii.gz"] and victim.read_bytes() == good
    assert "unreadable .npy header" in _warnings(caplog)[0]


@pytest.mark.parametrize("garbage", [b"{\"/x\": [1, 2", b"\xff\xfe\x00garbage", b"[1, 2, 3]",
                                     b'{"/x": "not an entry"}'])
def test_garbage_stat_cache_warns_once_and_rebuilds(built, caplog, garbage):
    root, out, files = built
    before = _npys(out)
    (out / "stat_cache.json").write_bytes(garbage)
    run = preprocess_tree(root, out, TINY)
    assert run.ok and len(run.skipped) == 3  # content addressing still knows every file
    [warning] = _warnings(caplog)
    assert "stat_cache.json" in warning and "damaged" in warning
    assert _npys(out) == before
    entries = json.loads((out / "stat_cache.json").read_text())
    assert len(entries) == 3 and "/x" not in entries


@pytest.mark.parametrize("garbage", [b"\x00garbage", b"[]", b'{"key": "other"}'])
def test_garbage_sidecar_is_rebuilt(built, caplog, garbage):
    root, out, files = built
    victim = Path(files["train_1_a_1.nii.gz"])
    good = victim.read_bytes()
    victim.with_suffix(".json").write_bytes(garbage)
    run = preprocess_tree(root, out, TINY)
    assert run.ok and run.done == ["train_1_a_1.nii.gz"] and victim.read_bytes() == good
    assert "no or damaged sidecar" in _warnings(caplog)[0]
    assert P.verify_cache_file(victim, full=True) is None


def test_verify_cache_file_rules(built):
    _, _, files = built
    file = Path(files["train_1_a_1.nii.gz"])
    good, sidecar = file.read_bytes(), json.loads(file.with_suffix(".json").read_text())
    assert sidecar["npy"]["bytes"] == len(good) and len(sidecar["npy"]["blake2b"]) == 128
    assert P.verify_cache_file(file, full=True) is None
    file.write_bytes(good + b"x")
    assert P.verify_cache_file(file) == f"oversized: {len(good) + 1} of {len(good)} bytes"
    del sidecar["npy"]  # written before checksums: header/size check only
    file.with_suffix(".json").write_text(json.dumps(sidecar))
    assert P.verify_cache_file(file) == f"oversized: {len(good) + 1} of {len(good)} bytes"
    file.write_bytes(good[:-1])
    assert P.verify_cache_file(file) == f"truncated: {len(good) - 1} of {len(good)} bytes"
    file.write_bytes(good[:-2] + b"xx")
    assert P.verify_cache_file(file, full=True) is None
    P.discard_cache_file(file)
    assert P.verify_cache_file(file) == "missing" and not file.with_suffix(".json").exists()
    P.discard_cache_file(file)  # already gone: fine


def test_open_preprocessed_names_a_damaged_file(built):
    _, out, files = built
    victim = Path(files["train_1_a_1.nii.gz"])
    victim.write_bytes(victim.read_bytes()[:1000])
    with pytest.raises(DataError, match=f"{victim}: damaged .*'train_1_a_1.nii.gz' "
                       r"\(truncated: 1000 of \d+ bytes\); preprocess again"):
        open_preprocessed(out, "train_1_a_1.nii.gz")


def _kill_mid_write(proc: subprocess.Popen, out: Path) -> bool:
    """Freeze the run again and again; once an output exists and a temp file is open, kill -9
    it right there. False when the run finished first."""
    while not (out / "volumes").exists() and proc.poll() is None:
        pass
    while proc.poll() is None:
        os.kill(proc.pid, signal.SIGSTOP)
        _, status = os.waitpid(proc.pid, os.WUNTRACED)
        if not os.WIFSTOPPED(status):
            proc.returncode = os.waitstatus_to_exitcode(status)
            return False
        outputs = [p for p in out.rglob("*.npy") if TEMP_MARK not in p.name]
        if outputs and _temps(out):
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        os.kill(proc.pid, signal.SIGCONT)
    return False


def test_kill_9_mid_write_then_rerun_leaves_no_temps_and_identical_outputs(tmp_path):
    data, out, clean = _plain(tmp_path / "data", 8), tmp_path / "out", tmp_path / "clean"
    args = ["preprocess", "--data", data, "--preset", "tiny", "--workers", "1"]
    proc = subprocess.Popen(_cli(*args, "--out", out), env=_env(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert _kill_mid_write(proc, out), "the run ended before it could be killed mid-write"
    assert _temps(out)  # what kill -9 leaves behind
    res = runner.invoke(app, [*map(str, args), "--out", str(out)])
    assert res.exit_code == EXIT_OK, res.output
    preprocess_tree(data, clean, TINY)
    assert _temps(out) == []
    assert _npys(out) == _npys(clean) and len(_npys(out)) == 8
    rows = [pq.read_table(d / "index.parquet").drop(["file"]).to_pylist() for d in (out, clean)]
    assert rows[0] == rows[1]


def _can_mount_tmpfs(folder: Path) -> str | None:
    if shutil.which("unshare") is None:
        return "unshare not installed"
    folder.mkdir()
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs "
                            f"'{folder}'"], capture_output=True, text=True)
    return None if probe.returncode == 0 else f"cannot mount a tmpfs: {probe.stderr.strip()}"


# in a private mount namespace: a 3 MiB tmpfs as the output; a first run of 2 volumes fits,
# a second run over 8 volumes (2 worker processes) fills it
_FILL_SCRIPT = """
mount -t tmpfs -o size=3m tmpfs "$OUT" || exit 90
"$PY" -m ctsearch.cli.main preprocess --data "$DATA" --out "$OUT" --preset tiny \
    --workers 1 >/dev/null 2>&1 || exit 91
cp -a "$OUT" "$BEFORE" && cp "$EXTRA"/* "$DATA"/ || exit 92
"$PY" -m ctsearch.cli.main preprocess --data "$DATA" --out "$OUT" --preset tiny \
    --workers 2 >"$LOG" 2>&1
echo $? >"$RC"
cp -a "$OUT" "$AFTER"
"""


def test_disk_full_on_a_real_small_filesystem(tmp_path):
    out = tmp_path / "out"
    if why := _can_mount_tmpfs(out):
        pytest.skip(why)
    env = {**_env(tmp_path), "PY": sys.executable, "OUT": str(out),
           "DATA": str(_plain(tmp_path / "data", 2)), "EXTRA": str(_plain(tmp_path / "x", 6, 2)),
           "BEFORE": str(tmp_path / "before"), "AFTER": str(tmp_path / "after"),
           "LOG": str(tmp_path / "log"), "RC": str(tmp_path / "rc")}
    res = subprocess.run(["unshare", "-rm", "sh", "-c", _FILL_SCRIPT], env=env,
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    log = (tmp_path / "log").read_text()
    assert int((tmp_path / "rc").read_text()) == EXIT_USAGE, log
    [line] = [ln for ln in log.splitlines() if "error:" in ln]
    assert f"{out}/" in line and "disk full" in line and "MiB free" in line
    assert "Traceback" not in log
    before, after = tmp_path / "before", tmp_path / "after"
    assert _temps(after) == []
    for name in ("index.parquet", "preprocess.json", "cases.parquet", "stat_cache.json"):
        assert (after / name).read_bytes() == (before / name).read_bytes(), name
    assert _npys(before).items() <= _npys(after).items()


def test_disk_full_stops_the_run_and_leaves_previous_outputs(built, monkeypatch):
    root, out, _ = built
    before = {n: (out / n).read_bytes() for n in ("index.parquet", "preprocess.json",
                                                 "cases.parquet")}
    real, calls = C.save_npy_digest, []

    def fills_up(path, array):
        calls.append(path)
        if len(calls) == 2:
            Path(path).write_bytes(b"\x93NUMPY half a volume")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, array)

    monkeypatch.setattr(C, "save_npy_digest", fills_up)
    with pytest.raises(DiskFull, match=r"/volumes/.*\.npy: disk full .*MiB free"):
        preprocess_tree(root, out, preset("quarter"))
    assert len(calls) == 2  # stopped: the third volume was never started
    assert _temps(out) == []
    assert {n: (out / n).read_bytes() for n in before} == before
    calls.clear()
    res = runner.invoke(app, ["preprocess", "--data", str(root), "--out", str(out),
                              "--preset", "quarter", "--workers", "1"])
    assert res.exit_code == EXIT_USAGE and "Traceback" not in res.output
    assert _says(res, "disk full", "MiB free")


def test_disk_full_on_the_final_index_write(built, monkeypatch):
    root, out, _ = built
    before = {n: (out / n).read_bytes() for n in ("index.parquet", "preprocess.json")}

    def no_room(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1")
        raise OSError("IOError: No space left on device. Detail: [errno 28]")

    monkeypatch.setattr(pq, "write_table", no_room)
    with pytest.raises(DiskFull, match=r"\.parquet: disk full"):
        preprocess_tree(root, out, preset("quarter"))
    assert _temps(out) == [] and {n: (out / n).read_bytes() for n in before} == before


def test_unexpected_error_costs_one_volume_and_exits_3(mini_tree, tmp_path, monkeypatch,
                                                       caplog):
    real, calls = P.preprocess, []

    def bug_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(P, "preprocess", bug_on_second)
    caplog.set_level(logging.DEBUG, logger="ctsearch.data.pipeline")
    run = preprocess_tree(mini_tree["root"], tmp_path / "lib", TINY)
    assert len(run.done) == 2 and len(calls) == 3
    [failed] = run.failed
    assert failed["error"].endswith(": internal error (RuntimeError: boom)")
    assert failed["error"].startswith(str(mini_tree["root"]))
    assert any("Traceback" in r.getMessage() and "boom" in r.getMessage()
               for r in caplog.records if r.levelno == logging.DEBUG)
    calls.clear()
    res = runner.invoke(app, ["preprocess", "--data", str(mini_tree["root"]), "--out",
                              str(tmp_path / "pre"), "--preset", "tiny", "--workers", "1"])
    assert res.exit_code == EXIT_PARTIAL and _says(res, "internal error (RuntimeError: boom)")
    report = json.loads((tmp_path / "pre/preprocess.json").read_text())
    assert report["counts"] == {"done": 2, "skipped": 0, "failed": 1}


def test_usage_errors_change_nothing(mini_tree, tmp_path):
    root, file = mini_tree["root"], tmp_path / "taken.txt"
    file.write_text("mine")
    with pytest.raises(UsageError, match="workers must be at least 1, got 0"):
        preprocess_tree(root, tmp_path / "pre", TINY, workers=0)
    with pytest.raises(UsageError, match=f"{file}: is an existing file"):
        preprocess_tree(root, file, TINY)
    base = ["preprocess", "--data", str(root), "--preset", "tiny"]
    for args, needle in [(["--out", str(file)], str(file)),
                         (["--out", str(tmp_path / "pre"), "--workers", "0"], "workers")]:
        res = runner.invoke(app, base + args)
        assert res.exit_code == EXIT_USAGE and _says(res, needle)
        assert "Traceback" not in res.output
    assert file.read_text() == "mine" and not (tmp_path / "pre").exists()

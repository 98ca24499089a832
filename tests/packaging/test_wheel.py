"""The wheel: every package ships, and it installs and runs outside the checkout (no editable)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _source_packages() -> set[str]:
    """Every folder holding .py files, as the package name it installs under."""
    mapped = {"ctsearch": "ctsearch", "indexes": "ctsearch.indexes", "cli": "ctsearch.cli",
              "bench": "ctsearch.bench"}
    names = set()
    for top, name in mapped.items():
        for init in (ROOT / top).rglob("*.py"):
            rel = init.parent.relative_to(ROOT / top).parts
            if "__pycache__" not in rel:
                names.add(".".join([name, *rel]))
    return names


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(ROOT)], check=True, capture_output=True)
    return next(out.glob("ctsearch-*.whl"))


def test_wheel_ships_every_package_and_the_presets(wheel):
    with zipfile.ZipFile(wheel) as zf:
        files = zf.namelist()
    shipped = {str(Path(f).parent).replace("/", ".") for f in files if f.endswith(".py")}
    assert _source_packages() <= shipped, _source_packages() - shipped
    for preset in ("ctsearch/models/presets/tiny.json", "ctsearch/data/presets/preprocess.json"):
        assert preset in files


def test_wheel_installs_into_a_fresh_venv_and_answers_a_query(wheel, world, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], capture_output=True, text=True,
                               check=True).stdout.strip())
    with zipfile.ZipFile(wheel) as zf:  # what pip does for a pure wheel, without the network
        zf.extractall(site)
    # the dependencies come from this environment's site-packages; a path added by a .pth
    # does not run that folder's .pth files, so the checkout's editable finder stays off
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run = {"cwd": tmp_path, "capture_output": True, "text": True,
           "env": {**os.environ, "PYTHONPATH": ""}}
    where = subprocess.run([str(py), "-c", "import ctsearch, ctsearch.search, ctsearch.cli.main;"
                            "print(ctsearch.__file__)"], **run)
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(site))
    cli = [str(py), "-m", "ctsearch.cli.main"]
    assert subprocess.run([*cli, "--help"], **run).returncode == 0
    res = subprocess.run([*cli, "query", "--index", "base", "--home", str(world["home"]),
                          "--report", "Pleural effusion.", "--k", "3", "--json"], **run)
    assert res.returncode == 0, res.stderr
    hits = json.loads(res.stdout)
    assert len(hits) == 3 and hits[0]["rank"] == 1

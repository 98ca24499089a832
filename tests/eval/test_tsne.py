"""t-SNE export of an index's embeddings."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from ctsearch.cli.main import app


def test_export_tsne_parquet_and_plots(world, tmp_path):
    pytest.importorskip("sklearn")
    from ctsearch.eval.tsne import abnormality_bin

    runner = CliRunner()
    res = runner.invoke(app, ["export", "tsne", "--index", "base", "--home", str(world["home"]),
                              "--out", str(tmp_path / "t"), "--kind", "both"])
    assert res.exit_code == 0, res.output
    table = pq.read_table(tmp_path / "t/tsne.parquet")
    assert table.column_names[:4] == ["volume", "x", "y", "kind"] and table.num_rows == 20
    assert set(table.column("kind").to_pylist()) == {"volume", "report"}
    for png in ("tsne_abnormalities.png", "tsne_age.png", "tsne_findings.png"):
        assert (tmp_path / "t" / png).stat().st_size > 1000
    again = runner.invoke(app, ["export", "tsne", "--index", "base", "--home",
                                str(world["home"]), "--out", str(tmp_path / "u"), "--kind", "both"])
    assert again.exit_code == 0
    assert pq.read_table(tmp_path / "u/tsne.parquet").column("x").to_pylist() == \
        table.column("x").to_pylist()  # deterministic with the seed
    assert [abnormality_bin(n) for n in (0, 2, 6, 9, 12, 15)] == ["0", "1-3", "4-6", "7-9",
                                                                 "10-12", ">=13"]

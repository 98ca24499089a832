"""Index build / query on a phantom set with a tiny model: exactness, filters, incremental."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from ctsearch.errors import UsageError
from ctsearch.search import (
    Encoder,
    IndexInfo,
    IndexMismatch,
    IndexNotFound,
    QueryError,
    QueryTarget,
    Searcher,
    build_index,
)
from ctsearch.search.info import Counts
from ctsearch.search.store import CODES, REPORTS, VOLUMES, column_matrix

_V0_KEYS = ["name", "ctsearch_version", "created", "data", "model_path", "model", "preprocess",
            "dim", "metric", "text_field", "token_grid", "codebook_size", "backend", "shard",
            "counts", "failed"]  # index.json before `schema`, in its order


def _searcher(world, name="base", **kw) -> Searcher:
    return Searcher(name, world["home"], **kw)


def test_folder_layout_and_index_json(world):
    folder, info = world["home"] / "indexes" / "base", world["info"]
    for rel in ("index.json", "stats.json", VOLUMES, REPORTS, CODES, "tokens/codebook.npy",
                "vectors/volumes/backend.json", "vectors/reports/backend.json"):
        assert (folder / rel).exists(), rel
    assert info.counts == Counts(volumes=10, reports=10, encoded=10, failed=0)
    assert info.dim == 128 and info.metric == "cosine" and info.model.sha256
    written = json.loads((folder / "index.json").read_text())
    assert list(written) == ["schema", *_V0_KEYS, "build_seconds"] and written["schema"] == 1
    assert written == info.to_dict() and IndexInfo.read(folder) == info


def test_embeddings_match_the_model_and_codes_restore_tokens(world):
    folder = world["home"] / "indexes" / "base"
    vol = pq.read_table(folder / VOLUMES)
    emb = column_matrix(vol, "embedding")
    assert vol.schema.field("embedding").type.list_size == 128
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    enc = Encoder.load(world["ckpt"])
    files = {r["volume"]: r["file"] for r in pq.read_table(
        world["home"] / "preprocessed/index.parquet").to_pylist()}
    name = vol.column("volume")[3].as_py()
    x = torch.from_numpy(np.load(files[name]).astype(np.float32))[None, None]
    np.testing.assert_allclose(enc.model.encode_volume(x).detach().numpy()[0], emb[3], atol=1e-5)
    codes = column_matrix(pq.read_table(folder / CODES), "codes")
    assert codes.dtype == np.uint16 and codes.shape[1] == int(np.prod(enc.model.cfg.vision.grid))
    grid = torch.from_numpy(codes[3].astype(np.int64)).reshape(1, *enc.model.cfg.vision.grid)
    tokens = enc.model.tokens_from_codes(grid)
    assert torch.equal(tokens, enc.model.encode_volume_tokens(x))


def test_report_query_is_the_exact_top_k(world):
    s = _searcher(world)
    hits = s.query(report="pleural effusion in the right hemithorax", k=5)
    q = s.encoder.encode_text(["pleural effusion in the right hemithorax"])[0]
    order = np.argsort(-(s.vectors @ q), kind="stable")[:5]
    assert [h.volume for h in hits] == [s.rows[i]["volume"] for i in order]
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5]
    np.testing.assert_allclose([h.score for h in hits], (s.vectors @ q)[order], atol=1e-5)


def test_like_excludes_itself_and_ranks_the_rest(world):
    s = _searcher(world)
    name = s.rows[0]["volume"]
    hits = s.query(like=name, k=3)
    assert name not in [h.volume for h in hits] and len(hits) == 3
    scores = s.vectors[1:] @ s.vectors[0]
    assert hits[0].score == pytest.approx(float(scores.max()), abs=1e-5)


@pytest.mark.parametrize("where,labels,split", [
    ("age > 50", (), None), ("sex = 'F' AND age < 70", (), None), (None, ("cardiomegaly",), None),
    (None, (), "valid"), ("pleural_effusion = 1 OR emphysema = 1", (), "train")])
def test_filters_equal_brute_force(world, where, labels, split):
    s = _searcher(world)
    hits = s.query(report="normal chest", k=10, where=where, labels=labels, split=split)
    keep = [i for i, r in enumerate(s.rows) if _passes(r, where, labels, split)]
    q = s.encoder.encode_text(["normal chest"])[0]
    expect = sorted(keep, key=lambda i: -float(s.vectors[i] @ q))[:10]
    assert [h.volume for h in hits] == [s.rows[i]["volume"] for i in expect]


def _passes(r: dict, where, labels, split) -> bool:
    ok = {None: True, "age > 50": (r["age"] or 0) > 50,
          "sex = 'F' AND age < 70": r["sex"] == "F" and (r["age"] or 999) < 70,
          "pleural_effusion = 1 OR emphysema = 1":
              r["Pleural effusion"] == 1 or r["Emphysema"] == 1}[where]
    ok &= all(r["Cardiomegaly"] == 1 for _ in labels)
    return ok and (split is None or r["split"] == split)


def test_per_scan_keeps_best_reconstruction(world):
    s = _searcher(world)
    hits = s.query(report="consolidation", k=10, per_scan=True)
    scans = [h.scan for h in hits]
    assert len(scans) == len(set(scans)) == len({r["scan"] for r in s.rows})


@pytest.mark.parametrize("kw,msg", [
    ({"report": "  "}, "^report text is empty$"),
    ({"like": "nope.nii.gz"}, "^unknown volume 'nope.nii.gz' in index 'base'$"),
    ({"report": "x", "k": 0}, "^k 0: must be at least 1$"),
    ({"report": "x", "where": "agex > 3"}, "unknown column 'agex'"),
    ({"report": "x", "where": "age >"}, "does not parse"),
    ({"report": "x", "labels": ("broken leg",)}, "unknown finding"),
    ({"report": "x", "like": "a"}, "^give exactly one of report, volume, like$")])
def test_query_errors(world, kw, msg):
    with pytest.raises(QueryError, match=msg):
        _searcher(world).query(**kw)


def test_unknown_index_and_model_mismatch(world):
    with pytest.raises(IndexNotFound, match="unknown index 'nope'"):
        _searcher(world, "nope")
    with pytest.raises(IndexMismatch, match="index 'base' was built with model") as err:
        _searcher(world, model=world["other"])
    assert str(world["other"].name) in str(err.value) and "--" not in str(err.value)


def test_query_target_is_a_mode(world):
    s = _searcher(world)
    by_enum = s.query(report="effusion", k=3, target=QueryTarget.reports)
    assert by_enum == s.query(report="effusion", k=3, target="reports")
    with pytest.raises(UsageError, match="target 'voxels': choose one of volumes, reports"):
        s.query(report="effusion", target="voxels")


def test_incremental_add_remove_and_model_change(world, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(world["data"], data)
    files = sorted(data.rglob("*.nii.gz"))
    held = tmp_path / "held"
    held.mkdir()
    for f in files[:3]:
        shutil.move(f, held / f.name)
    home = tmp_path / "home"
    first = build_index(data, world["ckpt"], "inc", home=home, workers=1)
    assert first.counts.volumes == 7
    for f in files[:3]:
        shutil.move(held / f.name, f)
    files[-1].unlink()
    grown = build_index(data, world["ckpt"], "inc", home=home, workers=1)
    assert grown.counts.volumes == 9 and grown.counts.encoded == 3
    s = Searcher("inc", home)
    assert files[-1].name not in s.row_of_volume and len(s.index) == 9
    base = Searcher("base", world["home"])
    for name, row in s.row_of_volume.items():
        np.testing.assert_allclose(s.vectors[row], base.vectors[base.row_of_volume[name]],
                                   atol=1e-6)
    changed = build_index(data, world["other"], "inc", home=home, workers=1)
    assert changed.counts.encoded == 9


def test_shards_merge_to_the_full_index(world, tmp_path):
    from ctsearch.search import merge_shards

    home = tmp_path / "home"
    shutil.copytree(world["home"] / "preprocessed", home / "preprocessed")
    for i in range(2):
        part = build_index(world["data"], world["ckpt"], "sh", home=home, shard=f"{i}/2",
                           workers=1)
        assert part.shard == (i, 2) and part.counts.volumes == 5
    with pytest.raises(IndexNotFound, match="unknown index 'sh'"):
        Searcher("sh", home)
    merged = merge_shards("sh", home)
    assert merged.counts.volumes == 10
    a, b = Searcher("sh", home), _searcher(world)
    np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-6)


def test_publish_is_atomic_under_a_kill(world, tmp_path, monkeypatch):
    import ctsearch.search.store as store

    home = tmp_path / "home"
    shutil.copytree(world["home"], home)
    before = (home / "indexes/base/index.json").read_text()
    real = store.os.replace

    def killed(src, dst):  # the process dies right after moving the old index aside
        real(src, dst)
        if ".base.old-" in str(dst):
            raise KeyboardInterrupt("kill -9")

    monkeypatch.setattr(store.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        build_index(world["data"], world["ckpt"], "base", home=home, rebuild=True, workers=1)
    monkeypatch.setattr(store.os, "replace", real)
    assert not (home / "indexes/base").exists()
    s = Searcher("base", home)  # recovers the previous index
    assert (home / "indexes/base/index.json").read_text() == before and len(s.rows) == 10


def test_a_killed_encode_resumes_from_finished_batches(world, tmp_path, monkeypatch):
    import ctsearch.search.parts as parts

    home = tmp_path / "home"
    real, seen = parts.encode_batch, []

    def dies_on_third(rows, enc, work, number):
        if len(seen) == 2:
            raise KeyboardInterrupt("kill -9")
        seen.append(number)
        return real(rows, enc, work, number)

    monkeypatch.setattr(parts, "encode_batch", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        build_index(world["data"], world["ckpt"], "resume", home=home, batch_size=2, workers=1)
    assert not (home / "indexes/resume").exists()
    monkeypatch.setattr(parts, "encode_batch", real)
    info = build_index(world["data"], world["ckpt"], "resume", home=home, batch_size=2,
                       workers=1)
    assert info.counts.encoded == 6 and info.counts.volumes == 10


def test_bad_volume_is_reported_and_the_rest_indexed(world, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(world["data"], data)
    bad = sorted(data.rglob("*.nii.gz"))[0]
    bad.write_bytes(b"not a nifti")
    info = build_index(data, world["ckpt"], "bad", home=tmp_path / "home", workers=1)
    assert info.counts.volumes == 9 and info.counts.failed == 1
    assert bad.name in info.failed[0]["volume"] or str(bad) in info.failed[0]["error"]


@pytest.mark.parametrize("backend", ["faiss:hnsw", "faiss:ivf", "qdrant-edge"])
def test_backends_answer_like_exact_and_update_incrementally(world, tmp_path, backend):
    pytest.importorskip("qdrant_edge" if backend.startswith("qdrant") else "faiss")
    home = tmp_path / "home"
    shutil.copytree(world["home"] / "preprocessed", home / "preprocessed")
    info = build_index(world["data"], world["ckpt"], "b", backend=backend, home=home, workers=1)
    assert info.backend.volumes["count"] == 10
    exact, other = _searcher(world), Searcher("b", home)
    for kw in ({"report": "effusion"}, {"report": "nodule", "split": "train"},
               {"like": exact.rows[0]["volume"], "where": "age > 30"}):
        assert _ids(other.query(k=5, **kw)) == _ids(exact.query(k=5, **kw))
    data = tmp_path / "data"
    shutil.copytree(world["data"], data)
    sorted(data.rglob("*.nii.gz"))[0].unlink()
    del other
    again = build_index(data, world["ckpt"], "b", backend=backend, home=home, workers=1)
    assert again.counts.encoded == 0 and again.backend.volumes["count"] == 9


def _ids(hits: list) -> list[str]:
    return [h.volume for h in hits]


def test_report_to_report_search(world):
    s = _searcher(world)
    reports = pq.read_table(world["home"] / "indexes/base" / REPORTS)
    emb, names = column_matrix(reports, "embedding"), reports.column("volume").to_pylist()
    q = s.encoder.encode_text(["Pleural effusion."])[0]
    hits = s.query(report="Pleural effusion.", k=4, target="reports")  # reconstructions tie
    np.testing.assert_allclose([h.score for h in hits], np.sort(emb @ q)[::-1][:4], atol=1e-5)
    like = s.query(like=names[0], k=3, target="reports")
    assert names[0] not in [h.volume for h in like]
    np.testing.assert_allclose([h.score for h in like], np.sort(emb[1:] @ emb[0])[::-1][:3],
                               atol=1e-5)


def test_qdrant_server_path_through_client_local_mode(world, tmp_path):
    """--qdrant-url: tested against qdrant-client's in-process mode (no server runs here)."""
    pytest.importorskip("qdrant_client")
    from ctsearch.indexes.qdrant_client import connect

    home = tmp_path / "home"
    shutil.copytree(world["home"] / "preprocessed", home / "preprocessed")
    opts = {"url": ":memory:", "shard_number": 2, "replication_factor": 1}
    first = build_index(world["data"], world["ckpt"], "q", backend="qdrant", home=home,
                        backend_options=opts, workers=1)
    assert first.backend.volumes["kind"] == "qdrant"
    exact, other = _searcher(world), Searcher("q", home)
    for kw in ({"report": "effusion"}, {"report": "nodule", "labels": ("Lung nodule",)}):
        assert _ids(other.query(k=5, **kw)) == _ids(exact.query(k=5, **kw))
    second = build_index(world["data"], world["ckpt"], "q", backend="qdrant", home=home,
                         backend_options=opts, workers=1, rebuild=True)
    names = {c.name for c in connect(":memory:").get_collections().collections}
    assert second.backend.volumes["params"]["collection"] in names
    assert first.backend.volumes["params"]["collection"] not in names


_SLOW_BUILD = """
import sys, time
import ctsearch.search.parts as parts
from ctsearch.search import build_index
real = parts.encode_batch
def slow(*args):
    out = real(*args)
    time.sleep(0.4)
    return out
parts.encode_batch = slow
build_index(sys.argv[1], sys.argv[2], "base", home=sys.argv[3], batch_size=1, workers=1)
"""


def test_kill_9_mid_build_keeps_the_old_index_and_the_rerun_resumes(world, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    home = tmp_path / "home"
    shutil.copytree(world["home"], home)
    before = (home / "indexes/base/index.json").read_text()
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_BUILD, str(world["data"]),
                             str(world["other"]), str(home)])  # a new model: re-encode all
    deadline = time.time() + 120
    while len(list(home.glob("work/base-*/part-*.parquet"))) < 3 and time.time() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(home.glob("work/base-*/part-*.parquet")))
    assert 3 <= done < 10
    assert (home / "indexes/base/index.json").read_text() == before
    assert len(Searcher("base", home).query(report="effusion", k=3)) == 3  # old model, usable
    info = build_index(world["data"], world["other"], "base", home=home, batch_size=1, workers=1)
    assert info.counts.encoded == 10 - done and info.counts.volumes == 10


def test_build_reports_truncated_texts_once_with_the_total(world, tmp_path, caplog):
    from ctsearch.data import read_any
    from ctsearch.data.text import report_text
    from ctsearch.models.text import load_tokenizer

    tok = load_tokenizer(world["ckpt"].parent / "tokenizer")
    texts = [report_text(r) for r in read_any(world["data"]).to_pylist()]
    long = sum(len(tok.tokenize(t)) + 2 > 64 for t in texts)  # [CLS] + [SEP]; max_length 64
    assert long >= 2  # the phantom findings outgrow the tiny tower's 64 tokens
    with caplog.at_level("WARNING"):
        build_index(world["data"], world["ckpt"], "trunc", home=tmp_path, batch_size=2, workers=1)
    cut = [r.getMessage() for r in caplog.records if "truncated" in r.getMessage()]
    assert cut == [f"{long} of 10 report texts truncated to 64 tokens (as the official code does)"]


def test_the_duckdb_view_is_built_on_the_first_filtered_query_only(world):
    s = Searcher("base", world["home"])
    plain = s.query(report="pleural effusion", k=5)
    assert "filter" not in s.__dict__  # an unfiltered query never builds it
    split = s.query(report="pleural effusion", k=5, split="train")
    assert "filter" in s.__dict__
    assert all(h.split == "train" for h in split)
    assert [h.volume for h in s.query(report="pleural effusion", k=5)] == [h.volume for h in plain]

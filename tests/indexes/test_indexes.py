"""Vector backends: every one gives the exact top-k on clustered data, filters, removal, I/O."""

from __future__ import annotations

import gc
import json
import sys

import numpy as np
import pytest

from ctsearch.errors import BackendError, MissingDependency, MissingFileError, UsageError
from ctsearch.indexes import ExactIndex, load_index, open_index
from ctsearch.indexes.registry import parse_spec

DIM, N, Q, K = 64, 2000, 20, 10


def _clustered(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).standard_normal((20, DIM))
    x = centres[rng.integers(0, 20, n)] + 0.3 * rng.standard_normal((n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


VECTORS, QUERIES = _clustered(N, 1), _clustered(Q, 2)
IDS = np.random.default_rng(3).choice(2**62, N, replace=False).astype(np.int64)
IDS[0] = 2**63 - 1  # the largest allowed id


def _truth(allow=None, k=K, queries=QUERIES):
    keep = np.ones(N, bool) if allow is None else np.isin(IDS, allow)
    scores = queries @ VECTORS[keep].T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), IDS[keep][order]


# name -> (spec, options, minimum recall@10 vs exact; 1.0 = identical ids and scores)
# exact_below=100: allow-lists of 300 / 1200 ids use the native filtered search, 7 the exact path
BACKENDS = {
    "exact": ("exact", {}, 1.0),
    "faiss-flat": ("faiss:flat?exact_below=100", {}, 1.0),
    "faiss-hnsw": ("faiss:hnsw?M=16&efSearch=128&exact_below=100", {}, 0.98),
    "faiss-ivf": ("faiss:ivf?nprobe=8&exact_below=100", {}, 0.98),
    "qdrant-edge": ("qdrant-edge", {"exact_below": 100}, 1.0),
    "qdrant-edge-hnsw": ("qdrant-edge", {"exact_below": 100, "indexing_threshold": 10}, 0.98),
    "qdrant-client": ("qdrant", {"url": ":memory:"}, 1.0),
}


def _open(name: str, tmp_path):
    spec, options, _ = BACKENDS[name]
    if spec.startswith("faiss"):
        pytest.importorskip("faiss")
    if name.startswith("qdrant-edge"):
        pytest.importorskip("qdrant_edge")
        options = {**options, "path": tmp_path / "edge"}
    if name == "qdrant-client":
        pytest.importorskip("qdrant_client")
        options = {**options, "collection": f"c-{tmp_path.name}"}
    return open_index(spec, DIM, N, **options)


def _recall(got, want) -> float:
    return float(np.mean([len(set(g) & set(w)) / max(len(w), 1)
                          for g, w in zip(got, want, strict=True)]))


def _check(name: str, scores, ids, want_s, want_i) -> None:
    assert _recall(ids, want_i) >= BACKENDS[name][2]
    if BACKENDS[name][2] == 1.0:
        assert (ids == want_i).all()
        np.testing.assert_allclose(scores, want_s, atol=1e-4)


@pytest.fixture(params=list(BACKENDS))
def built(request, tmp_path):
    index = _open(request.param, tmp_path)
    index.add(IDS, VECTORS)
    if request.param == "qdrant-edge-hnsw":
        assert index.optimize()
        assert index.shard.info().indexed_vectors_count == N  # the HNSW graph really exists
    yield request.param, index
    if hasattr(index, "close"):
        index.close()


def test_top_k_equals_exact(built):
    name, index = built
    scores, ids = index.search(QUERIES, K)
    assert scores.dtype == np.float32 and ids.dtype == np.int64 and scores.shape == (Q, K)
    assert len(index) == N
    _check(name, scores, ids, *_truth())
    one_s, one_i = index.search(QUERIES[0], K)  # one vector = one query row
    assert (one_i == ids[:1]).all()


@pytest.mark.parametrize("n_allow", [7, 300, 1200])
def test_allow_list_is_the_true_top_k_of_the_subset(built, n_allow):
    name, index = built
    allow = np.random.default_rng(n_allow).choice(IDS, n_allow, replace=False)
    scores, ids = index.search(QUERIES, K, np.concatenate([allow, [5]]))  # 5: unknown id
    want_s, want_i = _truth(allow)
    assert np.isin(ids[ids >= 0], allow).all()
    if n_allow < K:  # fewer candidates than k: padded, and exact on every backend
        assert (ids[:, n_allow:] == -1).all() and np.isneginf(scores[:, n_allow:]).all()
        assert (ids[:, :n_allow] == want_i).all()
        return
    _check(name, scores, ids, want_s, want_i)


def test_padding_when_k_exceeds_the_index(built):
    name, index = built
    scores, ids = index.search(QUERIES[:2], N + 5)
    assert ids.shape == (2, N + 5) and (ids[:, N:] == -1).all() and np.isneginf(scores[:, N:]).all()
    assert ((ids == -1) == np.isneginf(scores)).all()
    for row in scores:  # best first
        assert (np.diff(row[np.isfinite(row)]) <= 1e-6).all()


def test_remove_and_readd(built):
    name, index = built
    gone = IDS[:200]
    index.remove(np.concatenate([gone, [123456789]]))  # unknown ids are ignored
    assert len(index) == N - 200
    scores, ids = index.search(QUERIES, K)
    assert not np.isin(ids, gone).any()
    _check(name, scores, ids, *_truth(IDS[200:]))  # and the right ids for what is left
    _, ids = index.search(VECTORS[:5], K, allow=IDS[:300])  # removed ids never come back
    assert not np.isin(ids, gone).any()
    index.add(gone[:1], -VECTORS[:1])  # re-adding an id replaces its vector
    scores, ids = index.search(-VECTORS[:1], 1)
    assert ids[0, 0] == gone[0] and scores[0, 0] == pytest.approx(1.0, abs=1e-4)
    index.add(IDS[[500, 500]], VECTORS[[1, 2]])  # a repeated id: the last vector wins
    scores, ids = index.search(VECTORS[2:3], 1, allow=IDS[[500]])
    assert len(index) == N - 199 and scores[0, 0] == pytest.approx(1.0, abs=1e-4)


@pytest.mark.parametrize("mmap", [True, False])
def test_save_load_round_trip(built, tmp_path, mmap):
    name, index = built
    before = index.search(QUERIES, K)
    index.save(tmp_path / "saved")
    assert json.loads((tmp_path / "saved/backend.json").read_text())["kind"] == index.kind
    if hasattr(index, "close"):
        index.close()  # a qdrant-edge shard is locked while open
    again = load_index(tmp_path / "saved", mmap=mmap)
    after = again.search(QUERIES, K)
    assert (after[1] == before[1]).all() and len(again) == N
    np.testing.assert_allclose(after[0], before[0], atol=1e-5)
    assert again.params() == index.params()
    # a loaded (possibly memory-mapped) index can still be edited and saved again in place
    again.add([7], VECTORS[:1] * -1)
    again.remove(IDS[:3])
    again.save(tmp_path / "saved")
    if hasattr(again, "close"):
        again.close()
    third = load_index(tmp_path / "saved", mmap=mmap)
    scores, ids = third.search(-VECTORS[:1], 1)
    assert ids[0, 0] == 7 and len(third) == N - 2
    if hasattr(third, "close"):
        third.close()


def test_exact_closed_form():
    index = ExactIndex(2)
    index.add(np.array([10, 20, 30]), np.array([[1, 0], [0, 1], [0.6, 0.8]], np.float32))
    scores, ids = index.search(np.array([[0.8, 0.6], [0, 1]], np.float32), 2)
    assert ids.tolist() == [[30, 10], [20, 30]]
    np.testing.assert_allclose(scores, [[0.96, 0.8], [1.0, 0.8]], atol=1e-6)
    scores, ids = index.search(np.array([[0.8, 0.6]], np.float32), 3, allow=np.array([20, 99]))
    assert ids.tolist() == [[20, -1, -1]] and scores[0, 0] == pytest.approx(0.6)
    with pytest.raises(UsageError, match="width 3"):
        index.add([1], np.ones((1, 3), np.float32))
    with pytest.raises(UsageError, match=">= 0"):
        index.add([-1], np.ones((1, 2), np.float32))


@pytest.mark.parametrize("spec", ["exact", "faiss:flat"])
def test_saving_over_a_mapped_index_replaces_its_files(tmp_path, spec):
    """Each file is written under a temporary name and renamed over the old one (a new inode):
    a reader mapping the old file keeps valid data (truncating it in place would SIGBUS)."""
    if spec.startswith("faiss"):
        pytest.importorskip("faiss")
    folder = tmp_path / "i"
    index = open_index(spec, DIM)
    index.add(IDS[:100], VECTORS[:100])
    index.save(folder)
    names = sorted(p.name for p in folder.iterdir())
    inodes = {name: (folder / name).stat().st_ino for name in names}
    mapped = np.load(folder / "vectors.npy", mmap_mode="r")
    reader = load_index(folder, mmap=True)
    before = reader.search(QUERIES, K)
    index.remove(IDS[:90])
    index.save(folder)  # smaller files
    assert sorted(p.name for p in folder.iterdir()) == names  # no temporary files left
    assert all((folder / name).stat().st_ino != inodes[name] for name in names)
    np.testing.assert_array_equal(mapped, VECTORS[:100])
    after = reader.search(QUERIES, K)
    assert (after[1] == before[1]).all() and len(load_index(folder)) == 10


def test_faiss_constructor_checks_the_variant():
    pytest.importorskip("faiss")
    from ctsearch.indexes import FaissIndex  # a registered class, imported on first use

    with pytest.raises(BackendError, match="faiss:lsh: choose hnsw, ivf or flat"):
        FaissIndex(DIM, "lsh")
    assert FaissIndex(DIM, n_hint=2_000_000).variant == "ivf"


def test_empty_index_and_empty_allow_list(tmp_path):
    index = ExactIndex(DIM)
    scores, ids = index.search(QUERIES[:2], 3)
    assert (ids == -1).all() and np.isneginf(scores).all()
    index.add(IDS[:10], VECTORS[:10])
    assert (index.search(QUERIES[:2], 3, allow=np.zeros(0, np.int64))[1] == -1).all()


def test_ivf_falls_back_to_flat_when_too_small():
    pytest.importorskip("faiss")
    index = open_index("faiss:ivf", DIM)
    index.add(IDS[:100], VECTORS[:100])
    assert index.params()["built_as"] == "flat"
    want = ExactIndex(DIM)
    want.add(IDS[:100], VECTORS[:100])
    assert (index.search(QUERIES, K)[1] == want.search(QUERIES, K)[1]).all()


def test_qdrant_edge_payload_filter(tmp_path):
    qe = pytest.importorskip("qdrant_edge")
    index = open_index("qdrant-edge", DIM, path=tmp_path / "e",
                       payload_indexes={"site": "keyword", "age": "integer"})
    sites = np.where(np.arange(N) % 3 == 0, "A", "B")
    index.add(IDS, VECTORS, payloads=[{"site": str(s), "age": i % 90} for i, s in enumerate(sites)])
    flt = qe.Filter(must=[qe.FieldCondition(key="site", match=qe.MatchValue("A"))])
    _, ids = index.search(QUERIES, K, flt=flt)
    assert (ids == _truth(IDS[sites == "A"])[1]).all()
    _, ids = index.search(QUERIES, K, allow=IDS[:900], flt=flt)  # both: intersection
    assert (ids == _truth(IDS[:900][sites[:900] == "A"])[1]).all()
    assert set(index.shard.info().payload_schema) == {"site", "age"}
    index.close()


def test_qdrant_edge_temp_folder_and_lock(tmp_path):
    pytest.importorskip("qdrant_edge")
    index = open_index("qdrant-edge", DIM)
    tmp = index.path
    index.add(IDS[:50], VECTORS[:50])
    del index
    gc.collect()
    assert not tmp.exists()  # a never-saved index leaves nothing behind
    index = open_index("qdrant-edge", DIM)
    index.add(IDS[:50], VECTORS[:50])
    index.save(tmp_path / "s")
    assert len(index) == 50 and not tmp.exists()
    assert index.shard is not None  # reopened: holds the folder lock
    with pytest.raises(RuntimeError, match="open elsewhere"):
        load_index(tmp_path / "s")
    index.close()
    assert len(load_index(tmp_path / "s")) == 50


def test_spec_parsing():
    assert parse_spec("faiss:hnsw?M=32&efSearch=64") == ("faiss", "hnsw", {"M": "32",
                                                                          "efSearch": "64"})
    assert parse_spec("qdrant:http://node0:6333?collection=x") == (
        "qdrant", "http://node0:6333", {"collection": "x"})
    assert parse_spec(" Exact ") == ("exact", "", {})


def test_faiss_spec_params_and_auto_rule():
    pytest.importorskip("faiss")
    index = open_index("faiss:hnsw?M=8&efSearch=32", DIM, efSearch=48)  # options override
    assert (index.M, index.ef_search) == (8, 48)
    assert open_index("faiss", DIM, 50_000).params()["variant"] == "hnsw"
    assert open_index("faiss", DIM, 5_000_000).params()["variant"] == "ivf"


@pytest.mark.parametrize("spec,msg", [
    ("annoy", "unknown index spec 'annoy'.*valid: exact, faiss"),
    ("exact:gpu", "unknown index spec"),
    ("faiss:lsh", "unknown index spec 'faiss:lsh'.*faiss:hnsw, faiss:ivf, faiss:flat"),
    ("faiss:hnsw?foo=1", "unknown parameter.*foo"),
    ("faiss:hnsw?M=abc", "M='abc' is not an integer"),
    ("faiss:ivf?nprobe=0", "nprobe=0 is out of range"),
    ("faiss:hnsw?M", "cannot parse"),
    ("qdrant-edge:x", "unknown index spec"),
    ("qdrant-edge?payload_indexes=x", "must be given as an option")])
def test_spec_errors(spec, msg):
    pytest.importorskip("faiss")
    pytest.importorskip("qdrant_edge")
    with pytest.raises(BackendError, match=msg):
        open_index(spec, DIM)


@pytest.mark.parametrize("spec,module,extra", [
    ("faiss:flat", "faiss", "ctsearch\\[faiss\\]"),
    ("qdrant-edge", "qdrant_edge", "ctsearch\\[qdrant\\]"),
    ("qdrant:http://localhost:6333", "qdrant_client", "ctsearch\\[qdrant\\]")])
def test_missing_package_names_the_extra(monkeypatch, spec, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    with pytest.raises(MissingDependency, match=extra):
        open_index(spec, DIM)


def test_load_index_needs_backend_json(tmp_path):
    with pytest.raises(MissingFileError, match="backend.json"):
        load_index(tmp_path)

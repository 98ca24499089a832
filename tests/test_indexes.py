"""Vector backends: every one gives the exact top-k on clustered data, filters, removal, I/O."""

from __future__ import annotations

import numpy as np
import pytest

from ctsearch.indexes import ExactIndex, load_index, open_index

DIM, N, Q, K = 32, 1500, 12, 10


def _clustered(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, DIM))
    x = centres[rng.integers(0, 20, n)] + 0.3 * rng.standard_normal((n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


VECTORS, QUERIES = _clustered(N, 0), _clustered(Q, 1)
IDS = np.random.default_rng(2).choice(2**62, N, replace=False).astype(np.int64)


def _truth(allow=None, k=K):
    keep = np.ones(N, bool) if allow is None else np.isin(IDS, allow)
    scores = QUERIES @ VECTORS[keep].T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), IDS[keep][order]


SPECS = {  # spec -> minimum recall@10 against exact (1.0 = identical ids)
    "exact": 1.0, "faiss:flat": 1.0, "faiss:hnsw?efSearch=128": 0.98, "faiss:ivf?nprobe=8": 0.98,
    "qdrant-edge": 1.0, "qdrant:memory": 1.0,
}


def _open(spec: str, tmp_path):
    if spec.startswith("faiss"):
        pytest.importorskip("faiss")
    if spec == "qdrant-edge":
        pytest.importorskip("qdrant_edge")
        return open_index(spec, DIM, N, path=tmp_path / "edge")
    if spec == "qdrant:memory":
        pytest.importorskip("qdrant_client")
        return open_index("qdrant", DIM, N, url=":memory:", collection=f"c{tmp_path.name}")
    return open_index(spec, DIM, N)


def _recall(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(g) & set(w)) / len(w) for g, w in zip(got, want, strict=True)]))


@pytest.fixture(params=list(SPECS))
def built(request, tmp_path):
    index = _open(request.param, tmp_path)
    index.add(IDS, VECTORS)
    return request.param, index


def test_top_k_equals_exact(built):
    spec, index = built
    scores, ids = index.search(QUERIES, K)
    want_s, want_i = _truth()
    assert _recall(ids, want_i) >= SPECS[spec] and len(index) == N
    if SPECS[spec] == 1.0:
        assert (ids == want_i).all()
        np.testing.assert_allclose(scores, want_s, atol=1e-4)


@pytest.mark.parametrize("n_allow", [7, 300])
def test_allow_list_is_the_true_top_k_of_the_subset(built, n_allow):
    spec, index = built
    allow = np.random.default_rng(n_allow).choice(IDS, n_allow, replace=False)
    scores, ids = index.search(QUERIES, K, allow)
    want_s, want_i = _truth(allow)
    got = [row[row >= 0] for row in ids]
    assert all(set(g) <= set(allow.tolist()) for g in got)
    assert _recall(got, [w[: len(g)] for g, w in zip(got, want_i, strict=True)]) >= SPECS[spec]
    if n_allow < K:  # fewer candidates than k: padded
        assert (ids[:, n_allow:] == -1).all() and np.isneginf(scores[:, n_allow:]).all()


def test_remove_and_readd(built):
    spec, index = built
    gone = IDS[:200]
    index.remove(np.concatenate([gone, [123456789]]))  # unknown ids are ignored
    assert len(index) == N - 200
    _, ids = index.search(QUERIES, K)
    assert not np.isin(ids, gone).any()
    index.add(gone[:1], -VECTORS[:1])  # re-adding an id replaces its vector
    scores, ids = index.search(-VECTORS[:1], 1)
    assert ids[0, 0] == gone[0] and scores[0, 0] == pytest.approx(1.0, abs=1e-4)


def test_save_load_round_trip(built, tmp_path):
    spec, index = built
    before = index.search(QUERIES, K)
    index.save(tmp_path / "saved")
    for mmap in (True, False) if not spec.startswith("qdrant") else (True,):
        again = load_index(tmp_path / "saved", mmap=mmap)
        after = again.search(QUERIES, K)
        assert (after[1] == before[1]).all() and len(again) == N
        np.testing.assert_allclose(after[0], before[0], atol=1e-5)
        if spec.startswith("qdrant-edge"):
            again.close()


def test_exact_closed_form():
    index = ExactIndex(2)
    index.add(np.array([10, 20, 30]), np.array([[1, 0], [0, 1], [0.6, 0.8]], np.float32))
    scores, ids = index.search(np.array([[0.8, 0.6]], np.float32), 2)
    assert ids.tolist() == [[30, 10]] and scores[0].tolist() == pytest.approx([0.96, 0.8])


@pytest.mark.parametrize("spec,msg", [
    ("annoy", "unknown index spec 'annoy'"), ("faiss:lsh", "choose hnsw, ivf or flat"),
    ("faiss:hnsw?foo=1", "unknown parameter")])
def test_spec_errors(spec, msg):
    pytest.importorskip("faiss")
    with pytest.raises(ValueError, match=msg):
        open_index(spec, DIM)


def test_auto_picks_hnsw_then_ivf():
    pytest.importorskip("faiss")
    assert open_index("faiss", DIM, 50_000).params()["variant"] == "hnsw"
    assert open_index("faiss", DIM, 5_000_000).params()["variant"] == "ivf"

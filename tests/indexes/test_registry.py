"""The backend registry: one registration adds a backend everywhere; capabilities drive the rest."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest

from ctsearch.errors import BackendError, IndexFormatError
from ctsearch.indexes import ExactIndex, load_index, open_index
from ctsearch.indexes.registry import (
    DICT,
    INT,
    STR,
    Backend,
    backend,
    backends,
    register,
    resolve,
    specs,
    unregister,
)
from ctsearch.search.info import BackendRecord
from ctsearch.search.vectors import build_vectors, drop_server_collections

BUILTIN = "exact, faiss, faiss:hnsw, faiss:ivf, faiss:flat, qdrant, qdrant-edge, qdrant:URL"
created: list[dict] = []  # constructor arguments of every ToyIndex
added: list[tuple[str | None, list | None]] = []  # (collection, payloads) of every add
dropped: list[dict] = []  # params given to drop_saved


class ToyIndex(ExactIndex):
    """An exact index under its own kind that records what the callers hand it."""

    kind = "toy"

    def __init__(self, dim: int, *, device: str | None = "cpu", tag: int = 1,
                 payload_indexes: dict | None = None, collection: str | None = None):
        super().__init__(dim, device=device)
        self.tag, self.collection = tag, collection
        created.append({"tag": tag, "payload_indexes": payload_indexes, "collection": collection})

    def add(self, ids, vectors, payloads=None) -> None:
        added.append((self.collection, payloads))
        super().add(ids, vectors, payloads)

    @classmethod
    def drop_saved(cls, params: dict) -> None:
        dropped.append(params)


@pytest.fixture
def toy():
    """register(**fields) registers the toy backend; it is unregistered after the test."""

    def make(**fields) -> Backend:
        fields = {"params": {"tag": INT, "device": STR}, **fields}
        return register(Backend("toy", ("toy", "toy:big"), lambda: ToyIndex, **fields))

    yield make
    unregister("toy")
    for seen in (created, added, dropped):
        seen.clear()


def _tables() -> tuple[pa.Table, pa.Table]:
    x = np.eye(4, dtype=np.float32)[:3]
    emb = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), 4)
    volumes = pa.table({"id": pa.array([1, 2, 3], pa.int64()), "embedding": emb,
                        "split": ["train", "valid", "train"], "age": [40, None, 60]})
    return volumes, pa.table({"id": pa.array([1, 2, 3], pa.int64()), "embedding": emb})


def test_one_registration_adds_a_backend(toy, tmp_path):
    toy()
    index = open_index("toy:big?tag=3", 4, device="cpu")
    assert type(index) is ToyIndex and index.tag == 3 and backend("toy").kind == "toy"
    index.add([10, 20], np.eye(4, dtype=np.float32)[:2])
    index.save(tmp_path / "saved")
    assert json.loads((tmp_path / "saved/backend.json").read_text())["kind"] == "toy"
    again = load_index(tmp_path / "saved")
    assert type(again) is ToyIndex
    assert again.search(np.eye(4, dtype=np.float32)[1], 1)[1].tolist() == [[20]]
    with pytest.raises(BackendError, match="tag=0 is out of range"):
        open_index("toy?tag=0", 4)
    with pytest.raises(BackendError, match=r"unknown parameter\(s\) \['M'\]; valid: tag, device"):
        open_index("toy?M=8", 4)


def test_build_vectors_with_a_registered_backend(toy, tmp_path):
    toy()
    volumes, reports = _tables()
    out = build_vectors(tmp_path, volumes, reports, spec="toy", options={"device": "cpu"})
    assert out.spec == "toy" and out.options == {"device": "cpu"}
    assert (out.volumes["kind"], out.volumes["count"]) == ("toy", 3)
    assert (out.reports["kind"], out.reports["count"]) == ("toy", 3)
    assert type(load_index(tmp_path / "vectors/volumes")) is ToyIndex
    assert added == [(None, None), (None, None)]  # no payload capability: no payloads


def test_payload_capability_hands_over_payloads_and_indexes(toy, tmp_path):
    toy(params={"tag": INT, "device": STR, "payload_indexes": DICT}, payloads=True)
    volumes, reports = _tables()
    build_vectors(tmp_path, volumes, reports, spec="toy", options={"device": "cpu"})
    assert added == [(None, [{"split": "train", "age": 40}, {"split": "valid"},
                             {"split": "train", "age": 60}]),
                     (None, None)]  # reports carry no payloads
    volume_schema, report_schema = (c["payload_indexes"] for c in created)
    assert volume_schema["split"] == "keyword" and volume_schema["pleural_effusion"] == "integer"
    assert report_schema is None


@pytest.mark.parametrize("server", [True, False])
def test_server_collection_capability(toy, tmp_path, server):
    toy(params={"tag": INT, "device": STR, "collection": STR}, server_collections=server)
    volumes, reports = _tables()
    build_vectors(tmp_path / ".stage", volumes, reports, spec="toy", options={"device": "cpu"})
    want = ["ctsearch-stage-volumes", "ctsearch-stage-reports"] if server else [None, None]
    assert [c["collection"] for c in created] == want
    drop_server_collections(BackendRecord(spec="toy",
                                          volumes={"kind": "toy", "params": {"c": 1}},
                                          reports={"kind": "exact", "params": {}}))
    drop_server_collections(BackendRecord(spec="gone", volumes={"kind": "gone", "params": {}}))
    drop_server_collections(None)
    want = [{"c": 1}] if server else []  # only a server backend's; unknown kinds are skipped
    assert dropped == want


def test_unknown_spec_lists_exactly_the_registered_specs(toy):
    assert ", ".join(specs()) == BUILTIN
    with pytest.raises(BackendError) as err:
        open_index("annoy", 4)
    assert str(err.value) == f"unknown index spec 'annoy'; valid: {BUILTIN}"
    toy()
    with pytest.raises(BackendError) as err:
        open_index("toy:small", 4)
    assert str(err.value) == f"unknown index spec 'toy:small'; valid: {BUILTIN}, toy, toy:big"
    unregister("toy")
    with pytest.raises(BackendError, match=f"valid: {BUILTIN}$"):
        open_index("toy", 4)


def test_a_clashing_registration_is_refused(toy):
    toy()
    with pytest.raises(ValueError, match="clashes"):
        register(Backend("toy2", ("toy:big",), lambda: ToyIndex))
    with pytest.raises(ValueError, match="clashes"):
        register(Backend("toy", ("toy3",), lambda: ToyIndex))
    assert [b.kind for b in backends()] == ["exact", "faiss", "qdrant-edge", "qdrant", "toy"]


@pytest.mark.parametrize("spec,options,kind,variant", [
    ("exact", {}, "exact", ""),
    ("faiss", {}, "faiss", ""),
    ("faiss:ivf?nprobe=4", {}, "faiss", "ivf"),
    ("qdrant", {}, "qdrant-edge", ""),
    ("qdrant", {"url": None}, "qdrant-edge", ""),
    ("qdrant?url=", {}, "qdrant-edge", ""),
    ("qdrant-edge", {}, "qdrant-edge", ""),
    ("qdrant:http://h:6333", {}, "qdrant", "http://h:6333"),
    ("qdrant:http://h:6333", {"url": ":memory:"}, "qdrant", ":memory:"),
    ("qdrant?url=path:/x", {}, "qdrant", "path:/x"),
    ("qdrant-edge", {"url": "http://h"}, "qdrant", "http://h")])
def test_spec_resolution(spec, options, kind, variant):
    found, got, params = resolve(spec, options)
    assert (found.kind, got) == (kind, variant) and "url" not in params


def test_url_is_no_parameter_of_other_backends():
    with pytest.raises(BackendError, match=r"unknown parameter\(s\) \['url'\]"):
        open_index("exact", 4, url="http://h")


def test_capabilities_of_the_builtin_backends():
    table = {b.kind: (b.payloads, b.server_collections) for b in backends()}
    assert table == {"exact": (False, False), "faiss": (False, False),
                     "qdrant-edge": (True, False), "qdrant": (True, True)}
    for b in backends():  # the class behind each registration writes that kind
        assert b.loader().kind == b.kind


def test_qdrant_edge_accepts_and_drops_server_options(tmp_path):
    pytest.importorskip("qdrant_edge")
    index = open_index("qdrant-edge?shard_number=2&collection=x", 4, replication_factor=2,
                       path=tmp_path / "e")
    assert type(index).__name__ == "QdrantEdgeIndex" and "collection" not in index.params()
    index.close()


def test_optional_packages_load_only_when_used(tmp_path):
    code = ("import sys; from ctsearch.indexes.registry import open_index, load_index, backends; "
            "i = open_index('exact', 4); i.save(sys.argv[1]); load_index(sys.argv[1]); "
            "[b.loader() for b in backends()]; "
            "print([m for m in ('faiss', 'qdrant_edge', 'qdrant_client') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "i")], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_load_index_damaged_or_unknown_kind(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a/backend.json").write_text("{not json")
    with pytest.raises(IndexFormatError, match="damaged"):
        load_index(tmp_path / "a")
    (tmp_path / "a/backend.json").write_text('{"kind": "annoy", "dim": 4}')
    with pytest.raises(BackendError, match="unknown backend kind 'annoy'; registered: exact, "
                                           "faiss, qdrant-edge, qdrant$"):
        load_index(tmp_path / "a")

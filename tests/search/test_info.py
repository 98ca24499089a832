"""IndexInfo: the one reader / writer of index.json (old format, damage, schema, recovery)."""

from __future__ import annotations

import json
import shutil

import pytest

from ctsearch.errors import IndexFormatError, IndexMismatch, IndexNotFound, UsageError
from ctsearch.search import Searcher, merge_shards
from ctsearch.search.info import BackendRecord, Counts, IndexInfo, ModelPrint
from ctsearch.search.store import index_dir

OLD = {  # an index.json as written before the `schema` key (a shard: no vector backend yet)
    "name": "old", "ctsearch_version": "0.1.0", "created": "2026-11-22T16:20:36+0000",
    "data": "/data/CT-RATE", "model_path": "/models/CT-CLIP_v2.pt",
    "model": {"id": "0123456789abcdef", "sha256": "ab" * 32, "checkpoint": "/models/v2.pt",
              "config": {"clip": {"dim_latent": 512}}},
    "preprocess": {"shape": [240, 480, 480]}, "dim": 512, "metric": "cosine",
    "text_field": "impressions", "token_grid": [24, 24, 24], "codebook_size": 8192,
    "backend": {"spec": "faiss:hnsw"}, "shard": [1, 4],
    "counts": {"volumes": 7, "reports": 7, "encoded": 2, "failed": 1},
    "failed": [{"volume": "x.nii.gz", "error": "x.nii.gz: not a NIfTI"}], "build_seconds": 1.5,
}


def _folder(tmp_path, blob, name="old"):
    folder = tmp_path / "indexes" / name
    folder.mkdir(parents=True)
    (folder / "index.json").write_text(blob if isinstance(blob, str) else json.dumps(blob))
    return folder


def test_an_index_json_without_schema_opens_as_schema_1(tmp_path):
    info = IndexInfo.read(_folder(tmp_path, OLD))
    assert info.schema == 1 and info.name == "old" and info.text_field == "impressions"
    assert info.model == ModelPrint(id="0123456789abcdef", sha256="ab" * 32,
                                    checkpoint="/models/v2.pt",
                                    config={"clip": {"dim_latent": 512}})
    assert info.counts == Counts(volumes=7, reports=7, encoded=2, failed=1)
    assert info.backend == BackendRecord(spec="faiss:hnsw") and info.shard == (1, 4)
    assert info.merged_shards is None and info.build_seconds == 1.5
    assert info.to_dict() == {"schema": 1, **OLD}
    assert list(info.to_dict()) == ["schema", *OLD]  # today's keys, in today's order


def test_write_round_trips_atomically(tmp_path):
    info = IndexInfo.read(_folder(tmp_path, OLD))
    info.merged_shards, info.backend = 4, BackendRecord(spec="exact", options={},
                                                        volumes={"kind": "exact", "count": 7})
    info.write(tmp_path / "again")
    assert [p.name for p in (tmp_path / "again").iterdir()] == ["index.json"]  # no temp left
    written = json.loads((tmp_path / "again/index.json").read_text())
    assert list(written)[-2:] == ["build_seconds", "merged_shards"]
    assert written["backend"] == {"spec": "exact", "options": {},
                                  "volumes": {"kind": "exact", "count": 7}}
    assert IndexInfo.read(tmp_path / "again") == info


@pytest.mark.parametrize("blob,msg", [
    ("{not json", "damaged index.json"), ("[1, 2]", "not a JSON object"),
    ({**OLD, "schema": 2}, "index schema 2 is not supported"),
    ({k: v for k, v in OLD.items() if k not in ("model", "dim")}, "lacks model, dim"),
    ({**OLD, "model": {"sha256": "x"}}, "malformed index.json"),
    ({**OLD, "text_field": "findngs"}, "malformed index.json"),
    ({**OLD, "counts": {"volumes": 1}}, "malformed index.json"),
])
def test_a_damaged_index_json_is_a_format_error(tmp_path, blob, msg):
    folder = _folder(tmp_path, blob)
    with pytest.raises(IndexFormatError, match=msg) as err:
        IndexInfo.read(folder)
    assert str(folder / "index.json") in str(err.value)


def test_no_index_is_index_not_found_and_find_says_none(tmp_path):
    with pytest.raises(IndexNotFound) as err:
        IndexInfo.read(tmp_path / "indexes" / "nope")
    assert "unknown index 'nope'" in str(err.value)
    assert str(tmp_path / "indexes" / "nope" / "index.json") in str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    assert IndexInfo.find(tmp_path / "indexes" / "nope") is None
    with pytest.raises(IndexNotFound, match="no shards of index 'nope'"):
        merge_shards("nope", tmp_path)
    with pytest.raises(UsageError, match="index name '../x'"):
        index_dir("../x", tmp_path)


def test_read_recovers_an_interrupted_publish(tmp_path):
    aside = _folder(tmp_path, OLD, ".old.old-1700000000000")  # killed between the renames
    assert IndexInfo.read(tmp_path / "indexes" / "old").name == "old"
    assert not aside.exists() and (tmp_path / "indexes/old/index.json").is_file()


def test_check_model_names_both_models_in_library_terms(tmp_path):
    info = IndexInfo.read(_folder(tmp_path, OLD))
    info.check_model({"id": "0123456789abcdef", "checkpoint": "/elsewhere/v2.pt"})
    with pytest.raises(IndexMismatch) as err:
        info.check_model({"id": "fedcba9876543210", "checkpoint": "/models/other.pt"})
    assert str(err.value) == (
        "index 'old' was built with model 0123456789abcdef (/models/v2.pt), not "
        "fedcba9876543210 (/models/other.pt); rebuild the index with this model or use it "
        "with that one")


def test_a_real_index_from_before_schema_still_opens(world, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(world["home"] / "indexes" / "base", home / "indexes" / "base")
    path = home / "indexes/base/index.json"
    blob = json.loads(path.read_text())
    del blob["schema"]
    path.write_text(json.dumps(blob, indent=2))
    s, new = Searcher("base", home), Searcher("base", world["home"])
    assert s.info == new.info
    assert s.query(report="effusion", k=4) == new.query(report="effusion", k=4)


def test_synthetic_bench_index_records_its_model_not_the_home_as_data(tmp_path):
    from ctsearch.bench.query import _model, synthetic_index

    ckpt = _model(tmp_path / "m", "tiny")
    info = IndexInfo.read(synthetic_index(tmp_path / "home", "syn", ckpt, 12))
    assert info.data == str((tmp_path / "home" / "synthetic" / "syn").resolve())
    assert info.model_path == str(ckpt.resolve()) and info.counts.volumes == 12
    assert info.backend.volumes["count"] == 12


def test_a_hit_reads_like_the_dict_query_used_to_return():
    from ctsearch.search.hit import RESULT_KEYS, Hit

    hit = Hit(rank=1, volume="v.nii.gz", score=0.5, scan="s", patient="p", split="valid",
              reconstruction=1, age=60, sex="F", manufacturer="X", model_name="Y", kernel="K",
              findings=["Cardiomegaly"], report="Cardiomegaly.")
    assert [hit[k] for k in RESULT_KEYS] == list(hit.to_dict().values())
    assert hit["volume"] == hit.volume == "v.nii.gz"
    with pytest.raises(KeyError):
        hit["embedding"]

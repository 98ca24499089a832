"""`index.json`, the self-description of an index folder: the one place that reads and writes it."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from ctsearch.data.text import TextField
from ctsearch.errors import IndexFormatError, IndexMismatch, IndexNotFound
from ctsearch.fsutil import write_json
from ctsearch.search.store import recover

SCHEMA = 1  # index.json written before the `schema` key existed is schema 1 too
INDEX_JSON = "index.json"
REQUIRED = ("name", "ctsearch_version", "created", "data", "model_path", "model", "preprocess",
            "dim", "metric", "text_field", "token_grid", "codebook_size", "backend", "shard",
            "counts", "failed")


@dataclass
class ModelPrint:
    """What identifies the model that built the index (`Encoder.fingerprint()`)."""

    id: str
    sha256: str = ""
    checkpoint: str = ""
    config: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict) -> ModelPrint:
        return cls(id=d["id"], sha256=d.get("sha256", ""), checkpoint=d.get("checkpoint", ""),
                   config=d.get("config", {}))

    def to_dict(self) -> dict:
        return {"id": self.id, "sha256": self.sha256, "checkpoint": self.checkpoint,
                "config": self.config}


@dataclass
class Counts:
    """Volumes and reports in the index, encoded by the last build, failed to encode."""

    volumes: int
    reports: int
    encoded: int
    failed: int

    def to_dict(self) -> dict:
        return {"volumes": self.volumes, "reports": self.reports, "encoded": self.encoded,
                "failed": self.failed}


@dataclass
class BackendRecord:
    """The vector backend spec and, once built, its options and per-index records."""

    spec: str
    options: dict | None = None
    volumes: dict | None = None
    reports: dict | None = None

    @classmethod
    def from_dict(cls, d: dict) -> BackendRecord:
        return cls(spec=d["spec"], options=d.get("options"), volumes=d.get("volumes"),
                   reports=d.get("reports"))

    def to_dict(self) -> dict:
        out = {"spec": self.spec, "options": self.options, "volumes": self.volumes,
               "reports": self.reports}
        return {k: v for k, v in out.items() if v is not None}


@dataclass
class IndexInfo:
    """An index folder's `index.json`: what was indexed, with which model, and how."""

    name: str
    ctsearch_version: str
    created: str
    data: str
    model_path: str
    model: ModelPrint
    preprocess: dict
    dim: int
    metric: str
    text_field: TextField
    token_grid: list[int]
    codebook_size: int
    backend: BackendRecord
    shard: tuple[int, int] | None
    counts: Counts
    failed: list[dict]
    build_seconds: float | None = None
    merged_shards: int | None = None
    schema: int = SCHEMA

    @classmethod
    def read(cls, folder: str | Path) -> IndexInfo:
        """The index of `folder` (an interrupted publish is recovered first).

        Raises IndexNotFound when there is no index, IndexFormatError when it cannot be read.
        """
        folder = Path(folder)
        recover(folder)
        path = folder / INDEX_JSON
        if not path.is_file():
            raise IndexNotFound(f"unknown index {folder.name!r} (no {path})")
        try:
            blob = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise IndexFormatError(f"{path}: damaged index.json ({exc})") from None
        return cls.from_dict(blob, path)

    @classmethod
    def find(cls, folder: str | Path) -> IndexInfo | None:
        """`read(folder)`, or None when there is no index there yet."""
        try:
            return cls.read(folder)
        except IndexNotFound:
            return None

    @classmethod
    def from_dict(cls, d: dict, where: str | Path = INDEX_JSON) -> IndexInfo:
        """Validate an index.json dict (schema version, required keys, their shapes)."""
        if not isinstance(d, dict):
            raise IndexFormatError(f"{where}: index.json is not a JSON object")
        schema = d.get("schema", SCHEMA)
        if schema != SCHEMA:
            raise IndexFormatError(f"{where}: index schema {schema!r} is not supported (this "
                                   f"ctsearch reads schema {SCHEMA}); rebuild the index")
        missing = [k for k in REQUIRED if k not in d]
        if missing:
            raise IndexFormatError(f"{where}: index.json lacks {', '.join(missing)}")
        try:
            return cls._parse(d)
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexFormatError(f"{where}: malformed index.json ({type(exc).__name__}: "
                                   f"{exc})") from None

    @classmethod
    def _parse(cls, d: dict) -> IndexInfo:
        shard = d["shard"]
        return cls(
            name=d["name"], ctsearch_version=d["ctsearch_version"], created=d["created"],
            data=d["data"], model_path=d["model_path"], model=ModelPrint.from_dict(d["model"]),
            preprocess=dict(d["preprocess"]), dim=int(d["dim"]), metric=d["metric"],
            text_field=TextField(d["text_field"]), token_grid=list(d["token_grid"]),
            codebook_size=int(d["codebook_size"]), backend=BackendRecord.from_dict(d["backend"]),
            shard=(int(shard[0]), int(shard[1])) if shard else None,
            counts=Counts(**{k: int(v) for k, v in d["counts"].items()}),
            failed=list(d["failed"]), build_seconds=d.get("build_seconds"),
            merged_shards=d.get("merged_shards"), schema=d.get("schema", SCHEMA))

    def to_dict(self) -> dict:
        """The index.json object: today's keys in their order, `schema` first."""
        out = {"schema": self.schema}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "schema" or (value is None and f.name in ("build_seconds",
                                                                   "merged_shards")):
                continue
            out[f.name] = _plain(value)
        return out

    def write(self, folder: str | Path) -> None:
        """Atomically (re)write FOLDER/index.json."""
        write_json(Path(folder) / INDEX_JSON, self.to_dict())

    def copy(self) -> IndexInfo:
        return copy.deepcopy(self)

    def check_model(self, fingerprint: dict) -> None:
        """Refuse to use the index with another model than the one that built it."""
        if self.model.id != fingerprint["id"]:
            raise IndexMismatch(
                f"index {self.name!r} was built with model {self.model.id} "
                f"({self.model.checkpoint}), not {fingerprint['id']} "
                f"({fingerprint['checkpoint']}); rebuild the index with this model or use it "
                "with that one")

    def stale_reason(self, fingerprint: dict, preprocess: dict) -> str | None:
        """Why the encoded rows of this index cannot be reused by a build (None: they can)."""
        if self.model.id != fingerprint["id"]:
            return f"model changed: {self.model.id} -> {fingerprint['id']}"
        if self.preprocess != preprocess:
            return "preprocess config changed"
        return None


def _plain(value):
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, TextField):
        return value.value
    return value

"""The one registry of vector-index backends: spec forms, lazy classes, parameters, capabilities.

A backend is added by one `register(Backend(...))`; `open_index`, `load_index`, `backend_class`,
the spec parser's error messages and the search layer (`ctsearch.search.vectors`) all ask here.

Spec strings: `name[:variant][?key=value&...]`. A registered form is `name`, `name:variant` or
`name:URL` (any non-empty variant is the address of a server). A `url` parameter (or option)
given with a spec name listed in a server backend's `url_names` selects that server backend.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

from ctsearch.errors import BackendError, IndexFormatError, MissingFileError

if TYPE_CHECKING:
    from ctsearch.indexes.base import VectorIndex

URL = "URL"  # the variant placeholder of a form whose variant is a server address


@dataclass(frozen=True)
class Param:
    """A spec parameter: its type (None: passed on as given) and, for ints, the smallest value."""

    type: type | None
    minimum: int = 1


INT, COUNT, STR, DICT, ANY = Param(int), Param(int, 0), Param(str), Param(dict), Param(None)


@dataclass(frozen=True)
class ClassRef:
    """A backend class imported on first use, so its optional packages load only then."""

    module: str
    name: str

    def __call__(self) -> type[VectorIndex]:
        return getattr(import_module(self.module), self.name)


@dataclass(frozen=True)
class Backend:
    """One backend: its `kind` (as written in backend.json), the spec forms it answers, its class
    (`loader()`, imported lazily), its parameter schema and its capabilities."""

    kind: str
    specs: tuple[str, ...]
    loader: Callable[[], type[VectorIndex]]
    params: Mapping[str, Param] = field(default_factory=dict)
    ignored: frozenset[str] = frozenset()  # accepted and dropped (meaningless here)
    url_names: tuple[str, ...] = ()  # spec names that choose this backend when a url is given
    payloads: bool = False  # stores per-id payloads and filters on them natively
    server_collections: bool = False  # data lives in server collections, dropped on replace

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def create(self, dim: int, variant: str = "", params: dict | None = None, *, n_hint: int = 0,
               spec: str = "") -> VectorIndex:
        """A new empty index: `params` checked against the schema, then `cls.from_spec`."""
        kept = {k: v for k, v in (params or {}).items() if k not in self.ignored}
        typed = _typed(kept, self.params, spec or self.kind)
        return self.loader().from_spec(dim, variant, n_hint=n_hint, **typed)


_BACKENDS: dict[str, Backend] = {}


def register(backend: Backend) -> Backend:
    """Add `backend`; its kind and spec forms must be new."""
    taken = sorted(set(specs()) & set(backend.specs))
    if backend.kind in _BACKENDS or taken:
        raise ValueError(f"backend {backend.kind!r} clashes with a registered one "
                         f"(kind or specs {taken})")
    _BACKENDS[backend.kind] = backend
    return backend


def unregister(kind: str) -> None:
    """Remove the backend `kind` (unknown kinds are ignored)."""
    _BACKENDS.pop(kind, None)


def backends() -> tuple[Backend, ...]:
    """Every registered backend, in registration order."""
    return tuple(_BACKENDS.values())


def specs() -> tuple[str, ...]:
    """Every registered spec form, e.g. ('exact', 'faiss', 'faiss:hnsw', ..., 'qdrant:URL')."""
    return tuple(form for b in _BACKENDS.values() for form in b.specs)


def backend(kind: str) -> Backend:
    """The backend whose indexes say `kind` in backend.json."""
    try:
        return _BACKENDS[kind]
    except KeyError:
        raise BackendError(f"unknown backend kind {kind!r}; registered: "
                           f"{', '.join(_BACKENDS)}") from None


def backend_class(kind: str) -> type[VectorIndex]:
    """The class implementing backend `kind` (imported now)."""
    return backend(kind).loader()


def class_named(name: str) -> type[VectorIndex] | None:
    """The registered backend class called `name` (imported now), None if there is none."""
    for b in _BACKENDS.values():
        if getattr(b.loader, "name", None) == name:
            return b.loader()
    return None


# ---------------------------------------------------------------- spec strings


def parse_spec(spec: str) -> tuple[str, str, dict]:
    """'faiss:hnsw?M=32' -> ('faiss', 'hnsw', {'M': '32'}); 'qdrant:http://h:6333' -> URL."""
    head, _, query = spec.strip().partition("?")
    kind, _, variant = head.partition(":")
    try:
        params = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError:
        raise BackendError(f"index spec {spec!r}: cannot parse parameters {query!r}") from None
    return kind.strip().lower(), variant.strip(), params


def resolve(spec: str, options: Mapping | None = None) -> tuple[Backend, str, dict]:
    """(backend, variant or server URL, parameters) for `spec`; `options` (None values skipped)
    override the spec's parameters."""
    name, variant, params = parse_spec(spec)
    params.update({k: v for k, v in (options or {}).items() if v is not None})
    found = _match(name, variant)
    server = next((b for b in _BACKENDS.values() if name in b.url_names), None)
    url = params.pop("url", None) if server else None
    if found is None:
        raise BackendError(f"unknown index spec {spec!r}; valid: {', '.join(specs())}")
    return (server, str(url), params) if url else (found, variant, params)


def _match(name: str, variant: str) -> Backend | None:
    for b in _BACKENDS.values():
        for form in b.specs:
            head, _, want = form.partition(":")
            if head == name and (want == variant or (want == URL and variant)):
                return b
    return None


def _typed(params: dict, schema: Mapping[str, Param], spec: str) -> dict:
    """Check names and convert values ('32' -> 32) against `schema`; clear errors otherwise."""
    unknown = sorted(set(params) - set(schema))
    if unknown:
        raise BackendError(f"index spec {spec!r}: unknown parameter(s) {unknown}; "
                           f"valid: {', '.join(schema)}")
    return {key: _convert(key, value, schema[key], spec) for key, value in params.items()}


def _convert(key: str, value, param: Param, spec: str):
    kind = param.type
    if kind is None or isinstance(value, kind) and kind is not int:
        return value
    if kind is dict:
        raise BackendError(f"index spec {spec!r}: {key} must be given as an option (a dict)")
    if kind is int:
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise BackendError(f"index spec {spec!r}: {key}={value!r} is not an integer") from None
        if number < param.minimum:
            raise BackendError(f"index spec {spec!r}: {key}={number} is out of range")
        return number
    return kind(value)


# ---------------------------------------------------------------- factory


def open_index(spec: str, dim: int, n_hint: int = 0, **options) -> VectorIndex:
    """A new empty index from a spec string (see `specs()`); options override spec parameters.

    `faiss` alone picks HNSW for n_hint <= 1M (fast queries; the build is ~O(n log n) and slow
    on few cores) and IVF above (k-means build, cheap adds). `qdrant`/`qdrant-edge` is the
    in-process engine unless a URL is given (`qdrant:http://host:6333` or `url=`; `url=':memory:'`
    or `url='path:DIR'` is qdrant-client's local mode).
    """
    found, variant, params = resolve(spec, options)
    return found.create(dim, variant, params, n_hint=n_hint, spec=spec)


def load_index(folder: Path, mmap: bool = True) -> VectorIndex:
    """Open the index saved in `folder` (dispatch on its backend.json). With mmap=True large
    arrays are memory-mapped where the backend supports it (edits copy them into memory)."""
    folder = Path(folder)
    try:
        kind = json.loads((folder / "backend.json").read_text())["kind"]
    except FileNotFoundError:
        raise MissingFileError(f"{folder}: no backend.json (not a saved vector index)") from None
    except (KeyError, TypeError, ValueError):
        raise IndexFormatError(f"{folder}/backend.json is damaged (no backend kind)") from None
    return backend_class(kind).load(folder, mmap=mmap)


# ---------------------------------------------------------------- the built-in backends

register(Backend("exact", ("exact",), ClassRef("ctsearch.indexes.exact", "ExactIndex"),
                 {"device": STR}))
register(Backend(
    "faiss", ("faiss", "faiss:hnsw", "faiss:ivf", "faiss:flat"),
    ClassRef("ctsearch.indexes.faiss_index", "FaissIndex"),
    {"M": INT, "efConstruction": INT, "efSearch": INT, "nlist": INT, "nprobe": INT,
     "exact_below": COUNT}))
register(Backend(
    "qdrant-edge", ("qdrant", "qdrant-edge"), ClassRef("ctsearch.indexes.qdrant_edge",
                                                       "QdrantEdgeIndex"),
    {"hnsw_ef": INT, "exact_below": COUNT, "m": INT, "ef_construct": INT,
     "indexing_threshold": COUNT, "payload_indexes": DICT, "path": ANY},
    # server-only options are accepted (and meaningless) for the single in-process shard
    ignored=frozenset({"shard_number", "replication_factor", "collection"}), payloads=True))
register(Backend(
    "qdrant", (f"qdrant:{URL}",), ClassRef("ctsearch.indexes.qdrant_client", "QdrantClientIndex"),
    {"collection": STR, "shard_number": INT, "replication_factor": INT, "hnsw_ef": INT,
     "exact_below": COUNT, "payload_indexes": DICT},
    url_names=("qdrant", "qdrant-edge"), payloads=True, server_collections=True))

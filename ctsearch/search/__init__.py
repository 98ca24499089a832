"""Embedding search: encoder wrapper, index folders (build / merge), queries."""

from .build import build_index, merge_shards
from .encoder import Encoder, volume_id
from .query import QueryError, Searcher
from .store import IndexMismatch, index_dir, read_index_json

__all__ = [
    "Encoder", "IndexMismatch", "QueryError", "Searcher", "build_index", "index_dir",
    "merge_shards", "read_index_json", "volume_id",
]

"""Embedding search: encoder wrapper, index folders (build / merge), queries."""

from ctsearch.search.build import build_index, merge_shards
from ctsearch.search.encoder import Encoder, volume_id
from ctsearch.search.query import QueryError, Searcher
from ctsearch.search.store import IndexMismatch, index_dir, read_index_json

__all__ = [
    "Encoder", "IndexMismatch", "QueryError", "Searcher", "build_index", "index_dir",
    "merge_shards", "read_index_json", "volume_id",
]

"""Embedding search: encoder wrapper, index folders (build / merge), queries.

The names below are imported on first use (PEP 562), so `import ctsearch.search` stays cheap:
a query never loads the build pipeline, and nothing here imports torch or pyarrow up front.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ctsearch.errors import IndexFormatError, IndexMismatch, IndexNotFound, QueryError
from ctsearch.lazy import lazy_exports

if TYPE_CHECKING:
    from ctsearch.search.build import build_index, merge_shards
    from ctsearch.search.encoder import Encoder, volume_id
    from ctsearch.search.hit import Hit
    from ctsearch.search.info import IndexInfo
    from ctsearch.search.modes import QueryTarget, Template
    from ctsearch.search.query import Searcher
    from ctsearch.search.store import index_dir

_LAZY = {"build_index": "build", "merge_shards": "build", "Encoder": "encoder",
         "volume_id": "encoder", "Hit": "hit", "IndexInfo": "info", "QueryTarget": "modes",
         "Template": "modes", "Searcher": "query", "index_dir": "store"}

__all__ = [
    "Encoder", "Hit", "IndexFormatError", "IndexInfo", "IndexMismatch", "IndexNotFound",
    "QueryError", "QueryTarget", "Searcher", "Template", "build_index", "index_dir", "merge_shards",
    "volume_id",
]
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

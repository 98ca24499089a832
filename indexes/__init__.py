"""Vector index backends behind one interface (installed as ctsearch.indexes)."""

from ctsearch.indexes.base import VectorIndex, load_index, open_index
from ctsearch.indexes.exact import ExactIndex

__all__ = ["ExactIndex", "VectorIndex", "load_index", "open_index"]

_OPTIONAL = {"FaissIndex": "faiss_index", "QdrantEdgeIndex": "qdrant_edge",
             "QdrantClientIndex": "qdrant_client"}


def __getattr__(name: str):
    """The optional backends import lazily (faiss / qdrant need not be installed)."""
    if name in _OPTIONAL:
        from importlib import import_module

        return getattr(import_module(f".{_OPTIONAL[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

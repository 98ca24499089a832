"""Vector index backends behind one interface (installed as ctsearch.indexes)."""

from ctsearch.indexes.base import VectorIndex
from ctsearch.indexes.exact import ExactIndex
from ctsearch.indexes.registry import (
    Backend,
    Param,
    backend,
    backend_class,
    load_index,
    open_index,
    register,
    unregister,
)

__all__ = ["Backend", "ExactIndex", "Param", "VectorIndex", "backend", "backend_class",
           "load_index", "open_index", "register", "unregister"]


def __getattr__(name: str):
    """Registered backend classes import lazily (faiss / qdrant need not be installed)."""
    from ctsearch.indexes.registry import class_named

    cls = class_named(name)
    if cls is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return cls

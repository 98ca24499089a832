"""Vector index backends behind one interface (installed as ctsearch.indexes)."""

from .base import VectorIndex, load_index, open_index
from .exact import ExactIndex

__all__ = ["ExactIndex", "VectorIndex", "load_index", "open_index"]

"""ctsearch: retrieval and embedding search engine for 3D chest CT (CT-CLIP on CT-RATE)."""

__version__ = "0.1.0"

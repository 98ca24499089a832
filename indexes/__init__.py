"""Vector index backends behind one interface (installed as ctsearch.indexes)."""

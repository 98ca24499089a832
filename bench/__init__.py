"""Benchmarks run by `ctsearch bench ...` (installed as ctsearch.bench)."""

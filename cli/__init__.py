"""Command-line interface (installed as ctsearch.cli)."""

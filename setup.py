"""Package discovery: every package under ctsearch/, plus indexes/, cli/, bench/ as ctsearch.*."""

from setuptools import find_namespace_packages, setup

MAPPED = {"ctsearch.indexes": "indexes", "ctsearch.cli": "cli", "ctsearch.bench": "bench"}
EXCLUDE = ["*.__pycache__", "*.__pycache__.*"]


def packages() -> list[str]:
    """ctsearch and all its subpackages (data folders included), and the mapped folders'."""
    found = find_namespace_packages(include=["ctsearch", "ctsearch.*"], exclude=EXCLUDE)
    for name, folder in MAPPED.items():
        found += [name] + [f"{name}.{sub}" for sub in find_namespace_packages(folder,
                                                                               exclude=EXCLUDE)]
    return found


setup(packages=packages(), package_dir=MAPPED)

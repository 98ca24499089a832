"""One query result: `Hit`, whose `to_dict()` is an object of `ctsearch query --json`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass(frozen=True)
class Hit:
    """A ranked volume with its metadata; `to_dict()` is one object of `ctsearch query --json`."""

    rank: int
    volume: str
    score: float
    scan: str | None
    patient: str | None
    split: str | None
    reconstruction: int | None
    age: int | None
    sex: str | None
    manufacturer: str | None
    model_name: str | None
    kernel: str | None
    findings: list[str]
    report: str

    def to_dict(self) -> dict:
        """The JSON object: these keys in this order."""
        return asdict(self)

    def __getitem__(self, key: str):
        """`hit["volume"]`: results read as they did when `query` returned dicts."""
        if key not in RESULT_KEYS:
            raise KeyError(key)
        return getattr(self, key)


RESULT_KEYS = tuple(f.name for f in fields(Hit))  # the keys of `ctsearch query --json`
META_KEYS = ("scan", "patient", "split", "reconstruction", "age", "sex", "manufacturer",
             "model_name", "kernel")  # the index metadata columns a hit carries

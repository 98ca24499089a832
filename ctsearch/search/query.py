"""`ctsearch query`: report text / NIfTI file / indexed volume -> ranked, filtered volumes."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from ctsearch.choices import choose
from ctsearch.data.schema import PATHOLOGIES
from ctsearch.errors import CTSearchError, IndexFormatError, ModelError, QueryError
from ctsearch.search.encoder import Encoder
from ctsearch.search.filters import MetaFilter
from ctsearch.search.hit import META_KEYS, RESULT_KEYS, Hit
from ctsearch.search.info import IndexInfo
from ctsearch.search.modes import QueryTarget
from ctsearch.search.store import REPORTS, VOLUMES, column_matrix, index_dir

log = logging.getLogger(__name__)
__all__ = ["RESULT_KEYS", "Hit", "QueryError", "QueryTarget", "Searcher"]


class Searcher:
    """An opened index + the model that built it; `query` answers one request."""

    def __init__(self, name: str, home: str | Path | None = None, *,
                 model: str | Path | None = None, tokenizer: str | Path | None = None,
                 device: str | None = None, encoder: Encoder | None = None):
        from ctsearch.indexes import load_index

        self.name, self.folder = name, index_dir(name, home)
        self.info = IndexInfo.read(self.folder)
        self.encoder = encoder or Encoder.load(model or self.info.model_path, tokenizer, device)
        self.info.check_model(self.encoder.fingerprint())
        self._load_tables()
        with self._damaged("vectors/volumes"):
            self.index = load_index(self.folder / "vectors" / "volumes")
        self._reports_index = None

    @contextmanager
    def _damaged(self, part: str) -> Iterator[None]:
        """An unreadable part of the index (truncated, overwritten) becomes IndexFormatError."""
        try:
            yield
        except CTSearchError:
            raise
        except (OSError, ValueError, EOFError, KeyError, pa.ArrowException) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise IndexFormatError(f"index {self.name!r}: {self.folder / part} cannot be read "
                                   f"({first}); rebuild the index") from None

    @cached_property
    def filter(self) -> MetaFilter:
        """The duckdb view over the metadata (built on the first filtered query)."""
        return MetaFilter(self.meta)

    def _load_tables(self) -> None:
        with self._damaged(VOLUMES):
            table = pq.read_table(self.folder / VOLUMES)
            self.meta = table.drop_columns(["embedding"])
            self.vectors = column_matrix(table, "embedding")
        self.rows = self.meta.to_pylist()
        self.row_of_id = {r["id"]: i for i, r in enumerate(self.rows)}
        self.row_of_volume = {r["volume"]: i for i, r in enumerate(self.rows)}
        with self._damaged(REPORTS):
            reports = pq.read_table(self.folder / REPORTS, columns=["volume", "text"])
        self.report = dict(zip(*(reports.column(c).to_pylist() for c in ("volume", "text")),
                               strict=True))
        self.recons = max(Counter(r["scan"] for r in self.rows).values(), default=1)

    def query_vector(self, *, report: str | None = None, volume: str | Path | None = None,
                     like: str | None = None) -> np.ndarray:
        """The (dim,) query embedding of exactly one of report / volume file / indexed volume."""
        if sum(v is not None for v in (report, volume, like)) != 1:
            raise QueryError("give exactly one of report, volume, like")
        if report is not None:
            if not report.strip():
                raise QueryError("report text is empty")
            return self.encoder.encode_text([report])[0]
        if like is not None:
            return self.vectors[self._row(like)]
        return self._encode_file(Path(volume))

    def reports_index(self):
        """The report-embedding index (opened on first use)."""
        from ctsearch.indexes import load_index

        if not self.report:
            raise QueryError(f"index {self.name!r} holds no report texts (its volumes are "
                             "indexed for image search only): search its volumes")
        if self._reports_index is None:
            with self._damaged("vectors/reports"):
                self._reports_index = load_index(self.folder / "vectors" / "reports")
        return self._reports_index

    def _report_vector(self, like: str) -> np.ndarray:
        self._row(like)
        with self._damaged(REPORTS):
            table = pq.read_table(self.folder / REPORTS, columns=["volume", "embedding"],
                                  filters=[("volume", "=", like)])
        if not table.num_rows:
            raise QueryError(f"volume {like!r} has no report in index {self.name!r} (indexed "
                             "for image search only)")
        return column_matrix(table, "embedding")[0]

    def _row(self, volume: str) -> int:
        row = self.row_of_volume.get(volume)
        if row is None:
            raise QueryError(f"unknown volume {volume!r} in index {self.name!r}")
        return row

    def _encode_file(self, path: Path) -> np.ndarray:
        from ctsearch.data.config import PreprocessCfg
        from ctsearch.data.transforms import preprocess
        from ctsearch.data.volume import VolumeError, read_volume

        cfg = PreprocessCfg.from_dict(self.info.preprocess)
        known = self.rows[self.row_of_volume[path.name]] if path.name in self.row_of_volume else {}
        spacing = tuple(known["spacing"]) if known.get("spacing") else None
        try:  # a CT-RATE file of the index: its metadata rescale/spacing, as when it was indexed
            vol = read_volume(path, known.get("slope"), known.get("intercept"), spacing=spacing)
            x = preprocess(vol.stored, vol.spacing, cfg, dtype=cfg.cache_dtype, slope=vol.slope,
                           offset=vol.offset)
        except (VolumeError, ValueError, FileNotFoundError) as exc:
            raise QueryError(f"volume file {path}: {exc}") from None
        # the same float16 rounding as the indexed volumes' cache, so a file finds itself
        x = torch.from_numpy(np.asarray(x, np.float32))[None, None]
        latent, _ = self.encoder.encode_volumes(x)
        return latent[0]

    def query(self, *, report: str | None = None, volume: str | Path | None = None,
              like: str | None = None, k: int = 10, where: str | None = None,
              labels: tuple[str, ...] = (), split: str | None = None,
              per_scan: bool = False, target: str | QueryTarget = QueryTarget.volumes,
              ) -> list[Hit]:
        """Top-k volumes (true top-k of the filtered set), best first, with their metadata.

        `target="reports"` ranks the volumes by their report embeddings instead (report ->
        report search; `like` then uses the indexed volume's report).
        """
        if k < 1:
            raise QueryError(f"k {k}: must be at least 1")
        target = choose(QueryTarget, target, "target")
        filtered = where is not None or labels or split is not None  # else no duckdb view
        allow = self.filter.allowed(where, tuple(labels), split) if filtered else None
        q = self._target_vector(target, report=report, volume=volume, like=like)
        skip = self.rows[self._row(like)]["id"] if like is not None else None
        if allow is not None and skip is not None:
            allow = allow[allow != skip]
        fetch = k * (self.recons if per_scan else 1) + (1 if skip is not None else 0)
        index = self.index if target == QueryTarget.volumes else self.reports_index()
        hits = [(s, i) for s, i in self._search(index, q, fetch, allow) if i != skip]
        return [self._result(n + 1, s, i) for n, (s, i) in enumerate(_collapse(
            hits, self.rows, self.row_of_id, per_scan)[:k])]

    def _search(self, index, q: np.ndarray, fetch: int, allow) -> list[tuple[float, int]]:
        """(score, id) best first; a non-finite score means damaged vectors: refused."""
        scores, ids = index.search(q[None].astype(np.float32), fetch, allow)
        found = [(float(s), int(i)) for s, i in zip(scores[0], ids[0], strict=True) if i >= 0]
        if not all(np.isfinite(s) for s, _ in found):
            raise IndexFormatError(f"index {self.name!r}: similarity scores are not finite (its "
                                   "vectors are damaged or were built by a diverged model); "
                                   "rebuild it")
        return found

    def _target_vector(self, target: QueryTarget, *, report, volume, like) -> np.ndarray:
        """The query embedding; a non-finite one is a damaged index or a diverged model."""
        stored = target == QueryTarget.reports and like is not None
        if stored:
            q = self._report_vector(like)  # the indexed volume's report
        else:
            q = self.query_vector(report=report, volume=volume, like=like)
        if np.isfinite(q).all():
            return q
        if like is not None:
            raise IndexFormatError(
                f"index {self.name!r}: the stored embedding of {like!r} is not finite "
                f"({self.folder / (REPORTS if stored else VOLUMES)} is damaged or was built by "
                "a diverged model); rebuild it")
        what = "the report text" if report is not None else f"volume file {volume}"
        raise ModelError(f"model {self.encoder.path}: its embedding of {what} is not finite "
                         "(NaN/inf weights: a diverged or damaged checkpoint)")

    def _result(self, rank: int, score: float, id_: int) -> Hit:
        row = self.rows[self.row_of_id[id_]]
        return Hit(rank=rank, volume=row["volume"], score=round(score, 6),
                   **{c: row.get(c) for c in META_KEYS},
                   findings=[p for p in PATHOLOGIES if row.get(p) == 1],
                   report=self.report.get(row["volume"], ""))


def _collapse(hits: list[tuple[float, int]], rows: list[dict], row_of_id: dict,
              per_scan: bool) -> list[tuple[float, int]]:
    """Keep the best reconstruction of each scan (hits are sorted best first)."""
    if not per_scan:
        return hits
    seen, out = set(), []
    for score, id_ in hits:
        scan = rows[row_of_id[id_]]["scan"]
        if scan not in seen:
            seen.add(scan)
            out.append((score, id_))
    return out

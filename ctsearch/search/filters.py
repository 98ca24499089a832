"""`where` / `labels` / `split` filters over the index metadata, evaluated by duckdb."""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa

from ctsearch.data.schema import PATHOLOGIES
from ctsearch.errors import QueryError


def snake(name: str) -> str:
    """'Pleural effusion' -> 'pleural_effusion' (the SQL alias of a label column)."""
    return re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")


LABEL_ALIASES = {snake(p): p for p in PATHOLOGIES}


def resolve_label(name: str) -> str:
    """A finding by its CT-RATE name, any case, or its snake_case alias."""
    col = LABEL_ALIASES.get(snake(name))
    if col is None:
        import difflib

        near = difflib.get_close_matches(snake(name), list(LABEL_ALIASES), n=1, cutoff=0.5)
        hint = f"did you mean {LABEL_ALIASES[near[0]]!r}? " if near else ""
        raise QueryError(f"label {name!r}: unknown finding; {hint}choose from "
                         f"{', '.join(sorted(LABEL_ALIASES))}")
    return col


class MetaFilter:
    """An in-memory duckdb view `volumes` over the metadata (labels also as snake_case)."""

    def __init__(self, meta: pa.Table):
        import duckdb

        self.con = duckdb.connect()
        self.con.register("_meta", meta)
        aliases = ", ".join(f'"{p}" AS {snake(p)}' for p in PATHOLOGIES if p in meta.column_names)
        self.con.execute(f"CREATE VIEW volumes AS SELECT *{', ' + aliases if aliases else ''} "
                         "FROM _meta")
        self.con.execute("SET enable_external_access = false")
        self.columns = [r[0] for r in self.con.execute("DESCRIBE volumes").fetchall()]

    def allowed(self, where: str | None = None, labels: tuple[str, ...] = (),
                split: str | None = None) -> np.ndarray | None:
        """int64 ids that pass every filter; None when there is no filter."""
        clauses, params = [], []
        if where:
            clauses.append(f"({_check_where(where)})")
        clauses += [f'"{resolve_label(label)}" = 1' for label in labels]
        if split:
            clauses.append("split = ?")
            params.append(split)
        if not clauses:
            return None
        return self._run(" AND ".join(clauses), params, where)

    def _run(self, predicate: str, params: list, where: str | None) -> np.ndarray:
        import duckdb

        try:
            rows = self.con.execute(f"SELECT id FROM volumes WHERE {predicate}", params).fetchall()
        except duckdb.BinderException as exc:
            raise QueryError(_binder_message(exc, where, self.columns)) from None
        except (duckdb.ParserException, duckdb.ConversionException) as exc:
            raise QueryError(f"where {where!r} does not parse: {_first_line(exc)}") from None
        return np.asarray([r[0] for r in rows], np.int64)


def _check_where(where: str) -> str:
    if ";" in where:
        raise QueryError(f"where {where!r}: one SQL predicate, no ';'")
    return where


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]


def _binder_message(exc: Exception, where: str | None, columns: list[str]) -> str:
    m = re.search(r'column "?([^"\s]+)"? not found', str(exc), re.IGNORECASE) or re.search(
        r'Referenced column "([^"]+)"', str(exc))
    if m:
        return (f"where {where!r}: unknown column {m.group(1)!r}; columns: "
                f"{', '.join(columns)}")
    return f"where {where!r}: {_first_line(exc)}"

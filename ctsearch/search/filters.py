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
    """An in-memory duckdb view `volumes` over the metadata (labels also as snake_case).

    The sandbox: file access is off and the settings are locked before any user text runs;
    a `where` is parsed by duckdb as exactly one expression and the split / label filters are
    added around it with the relational API (never by pasting text), so no `where` can widen
    them; every database error becomes one QueryError line.
    """

    def __init__(self, meta: pa.Table):
        import duckdb

        self.con = duckdb.connect()
        self.con.register("_meta", meta)
        aliases = ", ".join(f'"{p}" AS {snake(p)}' for p in PATHOLOGIES if p in meta.column_names)
        self.con.execute(f"CREATE VIEW volumes AS SELECT *{', ' + aliases if aliases else ''} "
                         "FROM _meta")
        self.con.execute("SET enable_external_access = false")
        self.con.execute("SET lock_configuration = true")
        self.columns = [r[0] for r in self.con.execute("DESCRIBE volumes").fetchall()]
        split = meta.column("split").to_pylist() if "split" in meta.column_names else []
        self.splits = sorted({s for s in split if s is not None})

    def allowed(self, where: str | None = None, labels: tuple[str, ...] = (),
                split: str | None = None) -> np.ndarray | None:
        """int64 ids that pass every filter; None when there is no filter."""
        conditions = [] if where is None else [self._where(where)]
        conditions += [self._label(label) for label in labels]
        if split is not None:
            conditions.append(self._split(split))
        if not conditions:
            return None
        return self._run(conditions, where)

    def _where(self, where: str):
        import duckdb

        if not where.strip():
            raise QueryError(f"where {where!r} is empty: give one SQL predicate")
        try:
            return duckdb.SQLExpression(where)
        except duckdb.InvalidInputException:
            raise QueryError(f"where {where!r} does not parse: one predicate expected, "
                             "not a list") from None
        except duckdb.Error as exc:
            raise QueryError(f"where {where!r} does not parse: {_first_line(exc)}") from None

    def _label(self, label: str):
        from duckdb import ColumnExpression, ConstantExpression

        return ColumnExpression(resolve_label(label)) == ConstantExpression(1)

    def _split(self, split: str):
        from duckdb import ColumnExpression, ConstantExpression

        if split not in self.splits:
            raise QueryError(f"split {split!r}: not a split of this index; its splits: "
                             f"{', '.join(self.splits) or 'none'}")
        return ColumnExpression("split") == ConstantExpression(split)

    def _run(self, conditions: list, where: str | None) -> np.ndarray:
        import duckdb

        try:
            rel = self.con.table("volumes")
            for condition in conditions:
                rel = rel.filter(condition)
            rows = rel.project("id").fetchall()
        except duckdb.BinderException as exc:
            raise QueryError(_binder_message(exc, where, self.columns)) from None
        except duckdb.ParserException as exc:
            raise QueryError(f"{_subject(where)} does not parse: {_first_line(exc)}") from None
        except duckdb.Error as exc:
            raise QueryError(f"{_subject(where)}: {_first_line(exc)}") from None
        return np.asarray([r[0] for r in rows], np.int64)


def _subject(where: str | None) -> str:
    return f"where {where!r}" if where is not None else "filter"


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _binder_message(exc: Exception, where: str | None, columns: list[str]) -> str:
    m = re.search(r'column "?([^"\s]+)"? not found', str(exc), re.IGNORECASE) or re.search(
        r'Referenced column "([^"]+)"', str(exc))
    if m:
        return (f"{_subject(where)}: unknown column {m.group(1)!r}; columns: "
                f"{', '.join(columns)}")
    return f"{_subject(where)}: {_first_line(exc)}"

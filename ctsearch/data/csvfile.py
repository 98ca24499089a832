"""Read one CT-RATE CSV row by row: a bad byte, quote or cell count costs its row, not the file."""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterator
from pathlib import Path

from ctsearch.data import fields as F
from ctsearch.data.schema import KEY_ALIASES
from ctsearch.errors import CTRateError

log = logging.getLogger(__name__)

# Reserved keys of a row dict besides its columns: where it was read, and why it is unusable.
ROW_WHERE = "<where>"
ROW_PROBLEM = "<problem>"

_UNCLOSED = "unclosed"
_NOT_UTF8 = re.compile("[\udc80-\udcff]")  # bytes that are not UTF-8, decoded as surrogates
# a physical line that starts a CT-RATE record: a volume name like train_12_a_1(.nii.gz),
_RECORD_START = re.compile(r'"?[A-Za-z]+_\d+_[A-Za-z0-9]+_\d+(\.nii(\.gz)?)?"?,')


def _lines(path: Path) -> list[str]:
    """Physical lines (ends kept, as the csv module sees them); bad bytes become surrogates."""
    try:
        text = path.read_bytes().decode("utf-8-sig", errors="surrogateescape")
    except OSError as exc:
        raise CTRateError(f"{path}: unreadable CSV ({exc.strerror or exc})") from None
    return list(io.StringIO(text, newline=""))


def _swallowed(lines: list[str], start: int, end: int) -> int | None:
    """Index of the first line inside record [start, end) that starts a record of its own."""
    return next((k for k in range(start + 1, end) if _RECORD_START.match(lines[k])), None)


def _quote_problem(lines: list[str], start: int, end: int) -> str | None:
    """A quote left open at the end of the file (or otherwise malformed), via a strict parse."""
    if not any('"' in line for line in lines[start:end]):
        return None
    try:
        list(csv.reader(lines[start:end], strict=True))
    except csv.Error as exc:
        return f"malformed quoting ({exc}): an unclosed quote?"
    return None


def _records(lines: list[str]) -> Iterator[tuple[int, list[str], str | None]]:
    """(line number, cells, quoting problem) of every non-empty record.

    A record that runs over a later line starting like a CT-RATE record had an unclosed quote:
    its own first line is returned with the problem, and reading resumes at that later line.
    """
    pos = 0
    while pos < len(lines):
        reader, done = csv.reader(lines[pos:]), 0
        for cells in reader:
            start, end, done = pos + done, pos + reader.line_num, reader.line_num
            if (cut := _swallowed(lines, start, end)) is not None:
                cells = next(csv.reader(lines[start:start + 1]))
                yield start + 1, cells, _UNCLOSED
                pos = cut
                break
            if cells:
                yield start + 1, cells, _quote_problem(lines, start, end)
        else:
            return


def _column(header: list[str], index: int) -> str:
    return header[index] if 0 <= index < len(header) else f"#{index + 1}"


def _clean(header: list[str], cells: list[str]) -> tuple[list[str], str | None]:
    """Cells with bytes that are not UTF-8 shown as U+FFFD, and the first such column."""
    bad = next((i for i, c in enumerate(cells) if _NOT_UTF8.search(c)), None)
    if bad is None:
        return cells, None
    fixed = [c.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for c in cells]
    raw = _NOT_UTF8.search(cells[bad]).group().encode("utf-8", "surrogateescape")[0]
    return fixed, f"column {_column(header, bad)} is not UTF-8 text (byte 0x{raw:02x})"


def _header(path: Path, records) -> list[str]:
    first = next(records, None)
    if first is None:
        raise CTRateError(f"{path}: empty CSV (no header line)")
    _, cells, problem = first
    if problem or any(_NOT_UTF8.search(c) for c in cells):
        raise CTRateError(f"{path}: unreadable CSV (the header line is not UTF-8 CSV text)")
    return [h.strip() for h in cells]


def _row_problem(header: list[str], cells: list[str], quoting: str | None) -> str | None:
    """Why a record's cells cannot be trusted as a row (quoting or cell count), or None."""
    if quoting == _UNCLOSED:
        return (f"unclosed quote in column {_column(header, len(cells) - 1)} (the lines after "
                "it were read as rows of their own)")
    if quoting:
        return quoting
    if len(cells) != len(header):
        return f"{len(cells)} cells where the header has {len(header)}"
    return None


def read_keyed_csv(path: Path) -> tuple[list[str], dict[str, dict]]:
    """CSV -> (header, rows keyed by normalised VolumeName / AccessionNo).

    Each row also holds `ROW_WHERE` ("<file> line N") and, when its cells cannot be trusted,
    `ROW_PROBLEM`; one bad row never stops the file. A row is a problem when
    - a cell holds bytes that are not UTF-8 (kept with U+FFFD in their place);
    - a quote is never closed: the record swallowed following lines that start like a record
      (`<split>_<n>_<scan>_<n>,`); those are read again as their own rows;
    - a quote is left open at the end of the file, or the cell count differs from the header's;
    - its key appears again, with other cells, on a later line.
    A header that is not UTF-8 CSV text or lacks the key column is a CTRateError naming the file.
    """
    records = _records(_lines(path))
    header = _header(path, records)
    key = next((k for k in KEY_ALIASES if k in header), None)
    if key is None:
        names = " or ".join(KEY_ALIASES)
        raise CTRateError(f"{path}: no {names} column (header: {header[:5]})")
    rows: dict[str, dict] = {}
    for line, cells, quoting in records:
        _add_row(rows, header, key, (f"{path} line {line}", cells, quoting))
    return header, rows


def _add_row(rows: dict, header: list[str], key: str, record: tuple) -> None:
    """Add one record to `rows` under its volume key, with its location and any problem."""
    where, cells, quoting = record
    raw = dict(zip(header, cells, strict=False)).get(key) or ""
    if not raw.strip():
        return
    if _NOT_UTF8.search(raw):
        log.warning("%s: the %s cell is not UTF-8 text; row skipped", where, key)
        return
    cells, not_utf8 = _clean(header, cells)
    row = dict(zip(header, cells, strict=False))
    row[ROW_WHERE] = where
    if problem := _row_problem(header, cells, quoting) or not_utf8:
        row[ROW_PROBLEM] = f"{where}: {problem}"
    merge_rows(rows, {F.volume_key(raw): row})


def _cells(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in (ROW_WHERE, ROW_PROBLEM)}


def merge_rows(merged: dict[str, dict], rows: dict[str, dict]) -> None:
    """Add keyed rows to `merged`; a key already there with other cells becomes a problem row
    naming both places (an identical repeat is harmless)."""
    for volume, row in rows.items():
        old = merged.get(volume)
        if old is not None and ROW_PROBLEM not in row and _cells(old) != _cells(row):
            row = {**row, ROW_PROBLEM: f"{row[ROW_WHERE]}: {volume} is also on "
                   f"{old[ROW_WHERE]}, with other cells"}
        merged[volume] = row

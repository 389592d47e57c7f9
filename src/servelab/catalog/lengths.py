"""Empirical length distributions read from a file.

Formats (chosen by extension, content-sniffed for anything else):

* ``.jsonl`` — one JSON value per line: a number, or an object from which ``column``
  is read (default: the first of ``input_tokens``, ``prompt_tokens``, ``input_len``,
  ``output_tokens``, ``completion_tokens``, ``output_len`` present, in that order —
  pass ``column`` to choose).
* ``.csv`` — a header row; ``column`` names the column (default: the only column, or
  the first of the names above).
* anything else — one number per line; blank lines and ``#`` comments skipped.

Values must be positive integers (token counts); floats are rounded. An empty file,
a missing column or a bad value raises ConfigError naming the file, line and value.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..errors import ConfigError
from ._data import read_user_text
from ._workload_types import LengthDist

__all__ = ["read_lengths", "empirical_from_file", "DEFAULT_COLUMNS"]

DEFAULT_COLUMNS = ("input_tokens", "prompt_tokens", "input_len",
                   "output_tokens", "completion_tokens", "output_len")


def _to_int(value: object, where: str) -> int:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {value!r} is not a number") from None
    if not 1 <= number < float("inf"):  # also rejects NaN
        raise ConfigError(f"{where}: length {value!r} must be a finite number >= 1 token")
    return int(round(number))


def _pick_column(available: list[str], column: str | None, where: str) -> str:
    if column is not None:
        if column not in available:
            raise ConfigError(f"{where}: no column {column!r}; columns: {', '.join(available)}")
        return column
    if len(available) == 1:
        return available[0]
    for name in DEFAULT_COLUMNS:
        if name in available:
            return name
    raise ConfigError(f"{where}: say which column holds lengths; columns: {', '.join(available)}")


def read_lengths(path: str | Path, *, column: str | None = None) -> tuple[int, ...]:
    """Token counts from a JSONL, CSV or one-number-per-line file (see module doc)."""
    p, text = read_user_text(path, "length file")
    suffix = p.suffix.lower()
    values: list[int] = []
    if suffix == ".csv":
        reader = csv.DictReader(text.splitlines())
        fields = [f for f in (reader.fieldnames or []) if f]
        if not fields:
            raise ConfigError(f"{p}: CSV has no header row")
        col = _pick_column(fields, column, str(p))
        for i, row in enumerate(reader, start=2):
            values.append(_to_int(row.get(col), f"{p}:{i}"))
    else:
        for i, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            where = f"{p}:{i}"
            if suffix == ".jsonl" or line.startswith("{"):
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{where}: invalid JSON ({exc.msg})") from None
                if isinstance(obj, dict):
                    obj = obj.get(_pick_column(list(obj), column, where))
                values.append(_to_int(obj, where))
            else:
                values.append(_to_int(line, where))
    if not values:
        raise ConfigError(f"length file {str(p)!r} holds no lengths")
    return tuple(values)


def empirical_from_file(path: str | Path, *, column: str | None = None,
                        low: int = 1, high: int = 1 << 20) -> LengthDist:
    """An ``empirical`` LengthDist resampling the lengths in ``path``."""
    values = read_lengths(path, column=column)
    return LengthDist(kind="empirical", values=values, low=low, high=high,
                      mean=float(sum(values)) / len(values),
                      source=f"{path}" + (f" [{column}]" if column else ""))

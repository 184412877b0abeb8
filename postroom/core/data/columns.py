"""Fitting text to its column: the width is read from the model (``String(n)`` or a capped ``Text``).

``fit(Message.message_id, value)`` cuts a value to what its column holds; ``fitted(Message, values)``
does it for every text value of a row. A ``Text`` column is unbounded unless its ``info`` names a
cap under :data:`MAX_CHARS` (free text such as a server's error reply, kept readable, not whole).
"""

from __future__ import annotations

from typing import Any, overload

from sqlalchemy import String
from sqlalchemy import inspect as inspect_model
from sqlalchemy.orm import QueryableAttribute

#: The ``info`` key of a ``Text`` column that keeps at most this many characters.
MAX_CHARS = "max_chars"


#: Model -> its bounded text columns' widths, read once per model (the models never change at run time).
_WIDTHS: dict[Any, dict[str, int]] = {}


def _widths(model: Any) -> dict[str, int]:
    """Attribute name -> the characters its column holds, for every bounded text column of ``model``."""
    known = _WIDTHS.get(model)
    if known is not None:
        return known
    widths: dict[str, int] = {}
    for key, column in inspect_model(model).columns.items():
        if not isinstance(column.type, String):
            continue
        width = column.type.length or column.info.get(MAX_CHARS)
        if width:
            widths[key] = int(width)
    _WIDTHS[model] = widths
    return widths


def width(column: QueryableAttribute[Any]) -> int | None:
    """How many characters ``column`` (a model attribute such as ``Message.message_id``) holds; None: any."""
    return _widths(column.class_).get(column.key)


@overload
def fit(column: QueryableAttribute[Any], value: str) -> str: ...
@overload
def fit(column: QueryableAttribute[Any], value: None) -> None: ...
def fit(column: QueryableAttribute[Any], value: str | None) -> str | None:
    """``value`` cut to the width of ``column``; None and short values are returned as they are."""
    limit = width(column)
    return value[:limit] if value and limit is not None else value


def fitted(model: type[Any], values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (attribute name -> value) with every string cut to the width of its column in ``model``."""
    widths = _widths(model)
    return {
        key: value[: widths[key]] if isinstance(value, str) and key in widths else value
        for key, value in values.items()
    }

"""`Last`: the last answer about one packet table, kept while that table lives."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import polars as pl

T = TypeVar("T")


class Last(Generic[T]):
    """The last answer about one table, made again only when asked of another table or with other `same` values:
    several stages ask the same questions of one table. The table is only referred to weakly (it goes when its
    report does)."""

    def __init__(self) -> None:
        self._asked: tuple[weakref.ref[pl.DataFrame], tuple[Any, ...], T] | None = None

    def get(self, table: pl.DataFrame, same: tuple[Any, ...], make: Callable[[], T]) -> T:
        if self._asked is not None:
            ref, asked, answer = self._asked
            if ref() is table and asked == same:
                return answer
        answer = make()
        self._asked = (weakref.ref(table), same, answer)
        return answer

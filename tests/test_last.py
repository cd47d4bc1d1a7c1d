"""`Last`: one answer a table, made again for another table or other values, never keeping the table alive."""

from __future__ import annotations

import gc
import weakref

import polars as pl

from cniscope.last import Last


def test_the_answer_is_made_once_a_table_and_again_for_another_or_other_values() -> None:
    made: list[int] = []
    last: Last[int] = Last()

    def make(n: int) -> int:
        made.append(n)
        return n

    one, other = pl.DataFrame({"a": [1]}), pl.DataFrame({"a": [1]})
    assert last.get(one, (1,), lambda: make(1)) == 1
    assert last.get(one, (1,), lambda: make(2)) == 1  # kept
    assert last.get(other, (1,), lambda: make(3)) == 3  # an equal table, not the same one
    assert last.get(other, (2,), lambda: make(4)) == 4
    assert made == [1, 3, 4]


def test_the_table_is_not_kept_alive() -> None:
    last: Last[int] = Last()
    table = pl.DataFrame({"a": [1]})
    gone = weakref.ref(table)
    last.get(table, (), lambda: 1)
    del table
    gc.collect()
    assert gone() is None

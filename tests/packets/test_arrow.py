"""Numpy buffers to polars through the Arrow C data interface (`cniscope.packets.arrow`), without pyarrow."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import polars as pl
import pytest

from cniscope.packets import arrow
from cniscope.packets.columns import ARROW_TYPE, NUMPY_TYPE
from cniscope.packets.schema import SCHEMA


@pytest.fixture(autouse=True, params=["c", "ctypes"])
def exporter(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test both ways: the C decoder's export (the conftest's build) and ctypes, where it was not built."""
    if request.param == "ctypes":
        monkeypatch.setattr(arrow, "_export", None)


def test_each_format_arrives_with_its_values_nulls_and_type() -> None:
    valid = np.array([True, False, True, True, False])
    bitmap, nulls = arrow.validity(valid)
    assert nulls == 2 and bitmap is not None and bitmap.tolist() == [0b01101]
    numbers = {fmt: np.arange(5, dtype=dtype) + 250 * (dtype == np.uint8)
               for fmt, dtype in ((b"C", np.uint8), (b"S", np.uint16), (b"I", np.uint32), (b"L", np.uint64), (b"l", np.int64))}
    arrays = {fmt.decode(): arrow.Array(fmt, 5, nulls, (bitmap, values)) for fmt, values in numbers.items()}
    arrays["flag"] = arrow.Array(b"b", 5, 0, (None, np.packbits(valid, bitorder="little")))
    arrays["text"] = arrow.strings(["é", None, "", "ab", None])
    arrays["name"] = arrow.dictionary(np.array([1, -1, 0, 1, -1]), ["eth0", "vxlan.calico"])
    arrays["none"] = arrow.dictionary(np.array([-1] * 5), [])
    table = arrow.frame(arrays)
    assert table.schema == pl.Schema({"C": pl.UInt8, "S": pl.UInt16, "I": pl.UInt32, "L": pl.UInt64, "l": pl.Int64,
                                      "flag": pl.Boolean, "text": pl.String, "name": pl.Categorical(), "none": pl.Categorical()})
    assert table["C"].to_list() == [250, None, 252, 253, None] and table["l"].to_list() == [0, None, 2, 3, None]
    assert table["flag"].to_list() == valid.tolist() and table["text"].to_list() == ["é", None, "", "ab", None]
    assert table["name"].to_list() == ["vxlan.calico", None, "eth0", "vxlan.calico", None]
    assert table["none"].null_count() == 5


def test_buffers_are_taken_without_a_copy_and_let_go_with_the_table() -> None:
    values = np.arange(1000, dtype=np.uint32)
    structs = len(arrow._structs)
    table = arrow.frame({"v": arrow.Array(b"I", 1000, 0, (None, values))})
    assert table["v"].to_numpy(allow_copy=False).__array_interface__["data"][0] == values.__array_interface__["data"][0]
    gone = weakref.ref(values)
    assert len(arrow._structs) == structs  # a capsule's structs go with it: polars moved what they held
    del values
    gc.collect()
    assert gone() is not None and table["v"].sum() == 499500  # polars holds it
    del table
    gc.collect()
    assert gone() is None and len(arrow._structs) == structs


def test_a_dictionary_and_its_texts_are_let_go_with_the_table() -> None:
    codes, offsets = np.array([1, 0, 1], dtype=np.int32), np.array([0, 4, 11], dtype=np.int32)
    gone = [weakref.ref(codes), weakref.ref(offsets)]
    texts = arrow.Array(b"u", 2, 0, (None, offsets, np.frombuffer(b"eth0vxlan.1", dtype=np.uint8)))
    table = arrow.frame({"name": arrow.Array(b"i", 3, 0, (None, codes), texts)})
    del codes, offsets, texts
    gc.collect()
    assert table["name"].to_list() == ["vxlan.1", "eth0", "vxlan.1"]
    del table
    gc.collect()
    assert all(ref() is None for ref in gone)


def test_a_capsule_polars_never_takes_releases_its_buffers() -> None:
    values = np.arange(3, dtype=np.uint32)
    gone = weakref.ref(values)
    schema, array = arrow._Column(b"v", arrow.Array(b"I", 3, 0, (None, values))).__arrow_c_array__()
    del values, schema
    gc.collect()
    assert gone() is not None  # the array's capsule holds it
    del array
    gc.collect()
    assert gone() is None


def test_the_columns_arrow_formats_are_the_schemas_types_in_its_order() -> None:
    """`columns.ARROW_TYPE` (without polars, for the decoding ahead of its import) says what `schema.SCHEMA` does."""
    arrays = {name: arrow.strings([]) if fmt == b"u" else arrow.dictionary(np.zeros(0, np.int32), []) if fmt == b"i"
              else arrow.Array(fmt, 0, 0, (None, np.zeros(0, NUMPY_TYPE[name]))) for name, fmt in ARROW_TYPE.items()}
    assert arrow.frame(arrays).schema == pl.Schema(SCHEMA)

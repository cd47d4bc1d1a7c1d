"""A C extension of the tree compiled for the tests (with the compiler `make install` brings), whether or not the
installed package carries a build of it: what is tested is what the tree holds. And columns that test how the C
reads polars' buffers."""

from __future__ import annotations

import importlib.util
import subprocess
import sysconfig
from pathlib import Path
from types import ModuleType

import numpy as np
import polars as pl
import pyarrow as pa


def compile_c(source: Path, directory: Path) -> ModuleType:
    """`source` (`_name.c`) built in `directory` and imported as `_name`; warnings are errors."""
    name = source.stem
    target = directory / f"{name}{sysconfig.get_config_var('EXT_SUFFIX')}"
    subprocess.run(["cc", "-O2", "-Wall", "-Werror", "-Wno-unused-parameter", "-shared", "-fPIC",
                    f"-I{sysconfig.get_paths()['include']}", str(source), "-o", str(target)], check=True)
    spec = importlib.util.spec_from_file_location(name, target)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def garbage_under_nulls(column: pl.Series, rng: np.random.Generator) -> pl.Series:
    """The same integer column, with numbers where its nulls are in the values buffer (polars writes zeros there;
    Arrow promises nothing): C that reads a value without its null flag sees them."""
    valid = column.is_not_null().to_numpy()
    values = column.fill_null(0).to_numpy().copy()
    values[~valid] = rng.integers(1, 200, int((~valid).sum()))
    array = pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values),
                                  [pa.py_buffer(np.packbits(valid, bitorder="little")), pa.py_buffer(values)])
    return pl.Series(column.name, array)

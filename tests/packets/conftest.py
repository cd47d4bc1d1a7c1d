"""The packets tests decode with the C decoder the tree holds (and hand chunks to polars with its Arrow export):
`_decode.c` is compiled here (with the compiler `make install` brings), whether or not the installed package carries a
build of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from cniscope.packets import arrow, chunks
from tests.compiled import compile_c

SOURCE = Path(chunks.__file__).with_name("_decode.c")


@pytest.fixture(scope="session", autouse=True)
def c_decoder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    module = compile_c(SOURCE, tmp_path_factory.mktemp("decode"))
    installed = chunks._C, arrow._export
    chunks._C, arrow._export = module, module.export
    yield module
    chunks._C, arrow._export = installed

"""The packets tests decode with the C decoder the tree holds: `_decode.c` is compiled here (with the compiler
`make install` brings), whether or not the installed package carries a build of it."""

from __future__ import annotations

import importlib.util
import subprocess
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from cniscope.packets import decode

SOURCE = Path(decode.__file__).with_name("_decode.c")


def compile_decoder(directory: Path) -> ModuleType:
    target = directory / f"_decode{sysconfig.get_config_var('EXT_SUFFIX')}"
    subprocess.run(["cc", "-O2", "-Wall", "-Werror", "-Wno-unused-parameter", "-shared", "-fPIC",
                    f"-I{sysconfig.get_paths()['include']}", str(SOURCE), "-o", str(target)], check=True)
    spec = importlib.util.spec_from_file_location("_decode", target)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session", autouse=True)
def c_decoder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    module = compile_decoder(tmp_path_factory.mktemp("decode"))
    installed = decode._C
    decode._C = module
    yield module
    decode._C = installed

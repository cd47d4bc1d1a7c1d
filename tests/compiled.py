"""A C extension of the tree compiled for the tests (with the compiler `make install` brings), whether or not the
installed package carries a build of it: what is tested is what the tree holds."""

from __future__ import annotations

import importlib.util
import subprocess
import sysconfig
from pathlib import Path
from types import ModuleType


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

"""The C decoder reads no byte outside a frame's buffer: run under AddressSanitizer on frames cut anywhere, damaged,
and claiming far more bytes than the buffer holds, each in a buffer of exactly its own size.

The decoder is built here with -fsanitize=address,undefined and driven in a child process that has the sanitizer's
runtime loaded first (LD_PRELOAD): a read one byte past a buffer ends that process with the sanitizer's report.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.packets.conftest import SOURCE

ROOT = Path(__file__).resolve().parents[2]

DRIVER = """
import importlib.util, random, sys
import numpy as np
from cniscope.models import TUNNEL_PORTS
from cniscope.packets.columns import NUMPY_TYPE
from cniscope.packets.chunks import _IPV6
from cniscope.packets.chunks import port_kinds as _port_kinds
from tests.packets.synth import synth_frames
from tests.packets.test_decode import RARE_LINKS

spec = importlib.util.spec_from_file_location("_decode", sys.argv[1])
C = importlib.util.module_from_spec(spec)
spec.loader.exec_module(C)
kinds, names, r, count = _port_kinds(TUNNEL_PORTS), C.COLUMNS, random.Random(1), 0
for linktype, frame in synth_frames(300, seed=7) + RARE_LINKS:
    for cut in range(0, len(frame) + 1, max(1, len(frame) // 30)):
        raw = bytearray(frame[:cut])
        for _ in range(r.randrange(3)):
            if raw:
                raw[r.randrange(len(raw))] = r.randrange(256)
        data = np.array(raw, dtype=np.uint8)  # exactly these bytes: one more read is past the buffer
        values = [np.empty(1, dtype=np.int64 if name in _IPV6 else NUMPY_TYPE[name]) for name in names]
        C.decode(data, np.zeros(1, np.int64), np.array([cut + 1000], np.uint32), np.array([int(linktype)], np.uint16), kinds,
                 values, np.zeros((len(names), 1), dtype=np.uint64), np.zeros(len(names), dtype=np.int64))
        count += 1
print(count)
"""


def test_no_read_outside_the_buffer_under_address_sanitizer(tmp_path: Path) -> None:
    runtimes = [subprocess.run(["cc", f"-print-file-name={lib}"], capture_output=True, text=True, check=True).stdout.strip()
                for lib in ("libasan.so", "libubsan.so")]
    target = tmp_path / f"_decode{sysconfig.get_config_var('EXT_SUFFIX')}"
    subprocess.run(["cc", "-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-shared", "-fPIC",
                    f"-I{sysconfig.get_paths()['include']}", str(SOURCE), "-o", str(target)], check=True)
    env = {**os.environ, "LD_PRELOAD": " ".join(runtimes), "ASAN_OPTIONS": "detect_leaks=0",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    done = subprocess.run([sys.executable, "-c", DRIVER, str(target)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[-1]) > 5000


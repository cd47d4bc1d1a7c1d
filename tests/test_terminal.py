"""No raw control character from a capture reaches the terminal: names are shown escaped."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cniscope.terminal import printable
from tests.cli import run
from tests.frames import dns, ethernet, ipv4, udp
from tests.sources.pcapng_blocks import epb, idb, shb

RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
EVIL = "\x1b]0;owned\x07\x1b[2J\x9b31m"


def test_printable_escapes_like_python() -> None:
    assert printable(f"eth0{EVIL}") == "eth0\\x1b]0;owned\\x07\\x1b[2J\\x9b31m"
    assert printable("a\tb\nc") == "a\\x09b\\x0ac" and printable("a\tb\nc", lines=True) == "a\tb\nc"
    assert printable("caf\u00e9 \u202eevil") == "caf\u00e9 \\u202eevil"  # letters stay, a bidi override does not


@pytest.fixture
def crafted(tmp_path: Path) -> Path:
    """A pcapng whose node, interface and DNS names carry terminal escapes."""
    query = ethernet(ipv4(udp(dns(name=f"web{EVIL}.default"), sport=40000, dport=53), src="10.244.1.2",
                          dst="10.96.0.10", proto=17))
    path = tmp_path / "crafted.pcapng"
    path.write_bytes(shb("<", (1, f"node=n{EVIL}".encode())) + idb("<", 1, 0, (2, f"eth0{EVIL}".encode()))
                     + epb("<", 0, 1_700_000_000_000_000, query))
    return path


@pytest.mark.parametrize("command", [["analyze"], ["analyze", "--json"], ["read"], ["read", "--format", "csv"],
                                     ["read", "--format", "json"]])
def test_crafted_names_reach_the_terminal_escaped(crafted: Path, command: list[str]) -> None:
    ran = run(*command, str(crafted))
    assert ran.code == 0, ran.err
    assert not RAW.search(ran.out.replace("\n", "").replace("\t", "")) and not RAW.search(ran.err.replace("\n", ""))
    if command[-1] in ("analyze", "read"):
        assert "eth0\\x1b]0;owned\\x07" in ran.out

"""What `evidence.scan` counts of the MACs the models declare: frames, each once however many of its MACs (source,
destination, the inner frame's, ARP's sender) match, as Wireshark's `eth.addr` counts them; in C and in polars."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import polars as pl
import pytest

from cniscope.ingest import read
from cniscope.models import MODELS, evidence
from cniscope.packets.schema import mac_value
from cniscope.sources import InputSpec
from tests.frames import arp, ethernet, ipv4, tcp, udp, vxlan, write_pcap

CALICO = "ee:ee:ee:ee:ee:ee"  # Calico's fixed MAC: a model's MAC
POD = "0a:58:0a:f4:00:05"  # under flannel's and the CNI bridge plugin's prefix 0a:58
OTHER, PEER = "02:00:00:00:00:01", "02:00:00:00:00:02"


def frames() -> list[bytes]:
    plain = ipv4(tcp(), src="10.244.0.5", dst="10.244.1.6")
    inner = ethernet(plain, src=POD, dst=CALICO)

    def envelope(outer_src: str, outer_dst: str) -> bytes:
        return ethernet(ipv4(udp(vxlan(inner), sport=40000, dport=8472), src="192.168.0.1", dst="192.168.0.2", proto=17),
                        src=outer_src, dst=outer_dst)

    return [
        ethernet(plain, src=CALICO, dst=CALICO),  # both ends: once
        ethernet(plain, src=POD, dst=POD),  # both ends under the prefix: once
        ethernet(plain, src=CALICO, dst=OTHER),
        envelope(OTHER, PEER),  # only the inner frame's MACs: once for each
        envelope(CALICO, POD),  # the envelope's and the inner frame's: once for each
        ethernet(arp(sha=CALICO), src=CALICO, dst="ff:ff:ff:ff:ff:ff", ethertype=0x0806),  # Ethernet's and ARP's: once
        ethernet(plain, src=OTHER, dst=PEER),  # none
    ]


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("macs") / "macs.pcap"
    write_pcap(path, frames())
    return path


def counted(table: pl.DataFrame, how: str) -> tuple[int, int]:
    """Frames with Calico's MAC, frames with a MAC under 0a:58, by `how` (`c_scan` or `python_scan`)."""
    wanted = evidence.asked(table, list(MODELS.values()), None)
    assert mac_value(CALICO) in wanted.macs and 0x0a58 in wanted.prefixes
    found = getattr(evidence, how)(table, wanted)
    return found.macs[mac_value(CALICO)], found.prefixes[0x0a58]


@pytest.mark.parametrize("how", ["c_scan", "python_scan"])
def test_a_frame_counts_once_however_many_of_its_macs_match(capture: Path, how: str) -> None:
    if how == "c_scan" and not evidence.COMPILED:
        pytest.skip("the C extension _evidence is not built on this machine")
    table = read([InputSpec(str(capture))]).table
    assert table.height == 7
    assert counted(table, how) == (5, 3)


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_mac_counts_are_what_wireshark_counts(capture: Path) -> None:
    def wireshark(filter_: str) -> int:
        shown = subprocess.run(["tshark", "-n", "-r", str(capture), "-d", "udp.port==8472,vxlan", "-Y", filter_],
                               capture_output=True, text=True, check=True, timeout=120).stdout
        return len(shown.splitlines())

    table = read([InputSpec(str(capture))]).table
    # ARP's sender is always the frame's source here, so `eth.addr` sees every frame that `scan` counts
    assert counted(table, "python_scan") == (wireshark(f"eth.addr == {CALICO}"), wireshark("eth.addr[0:2] == 0a:58"))

"""`cniscope capture` for real, in network namespaces: bursts, drop counts, interrupts, pods."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from cniscope.capture import runner
from cniscope.capture.nodeside import TcpdumpSettings
from cniscope.ingest import manifest_inputs, read
from cniscope.sources import InputSpec
from tests.marks import needs_root

from .conftest import UDP_BLAST, Capturing, Namespaces, cniscope, comm, tshark_names

BURST = 10_000


def two_nodes(netns: Namespaces) -> None:
    netns.add("a")
    netns.add("b")
    netns.veth("a", "eth0", "b", "eth0")
    netns.ip("a", "addr", "add", "10.77.0.1/24", "dev", "eth0")
    netns.ip("b", "addr", "add", "10.77.0.2/24", "dev", "eth0")


def burst_capture(netns: Namespaces, tmp_path: Path, *extra: str) -> tuple[dict, Path]:
    out = tmp_path / "cap"
    running = Capturing(
        cniscope("capture", "--via", f"netns:{netns.prefix}", "--nodes", "a,b", "--filter", "udp port 9999",
                 "--duration", "60", "-o", str(out), *extra)
    )
    netns.run("a", sys.executable, "-c", UDP_BLAST, "10.77.0.2", str(BURST))
    code, err = running.interrupt()
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stop_reason"] == "interrupted"
    return manifest, out


@needs_root
def test_burst_of_10k_is_captured_without_drops_and_stops_on_sigint(netns: Namespaces, tmp_path: Path) -> None:
    two_nodes(netns)
    manifest, out = burst_capture(netns, tmp_path)
    by_name = {node["name"]: node for node in manifest["nodes"]}
    for name in ("a", "b"):
        node = by_name[name]
        assert node["tcpdump"] == {"captured": BURST, "received": BURST, "dropped": 0}, node
        assert node["packets"] == BURST
        # interrupted: the tcpdump we started (and its timeout wrapper) are gone, none runs in the node
        assert comm(node["pid"]) is None
        assert all(comm(pid) != "tcpdump" for pid in netns.pids(name))
    assert set(tshark_names(out / "a.pcapng")) == {"eth0"}
    # packets carry payloads: the user's alone
    assert stat.S_IMODE(out.stat().st_mode) == 0o700
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()} == dict.fromkeys(
        ["a.pcapng", "b.pcapng", "merged.pcapng", "manifest.json"], 0o600)
    # the analysis side reads the directory: one input per node, named
    capture = read(manifest_inputs(str(out)))
    assert capture.table.height == 2 * BURST
    assert sorted(capture.table["node"].unique().to_list()) == ["a", "b"]


@needs_root
def test_a_capture_that_drops_reports_the_kernel_count(netns: Namespaces, tmp_path: Path) -> None:
    two_nodes(netns)
    # a 1 KiB buffer in immediate mode (fixed slots): a ring of a few frames, drops whatever the machine's speed
    manifest, _ = burst_capture(netns, tmp_path, "--buffer", "1", "--immediate")
    node = next(n for n in manifest["nodes"] if n["name"] == "b")
    counts = node["tcpdump"]
    assert counts["dropped"] > 0
    assert counts["captured"] + counts["dropped"] == counts["received"] == BURST
    assert node["packets"] == counts["captured"]


@needs_root
def test_interface_tables_routes_sysctls_and_files(netns: Namespaces, tmp_path: Path) -> None:
    two_nodes(netns)
    netns.run("a", "sysctl", "-qw", "net.ipv4.ip_forward=1")
    netns.ip("a", "route", "add", "10.99.0.0/16", "via", "10.77.0.2")
    out = tmp_path / "cap"
    running = Capturing(cniscope("capture", "--via", f"netns:{netns.prefix}", "--nodes", "a,b", "--duration", "60", "-o", str(out)))
    netns.veth("a", "late0", "b", "late1")  # created during the capture: named from the table taken at stop
    netns.ip("a", "addr", "add", "10.78.0.1/24", "dev", "late0")
    netns.ip("b", "addr", "add", "10.78.0.2/24", "dev", "late1")
    netns.run("a", sys.executable, "-c", UDP_BLAST, "10.78.0.2", "3")
    code, err = running.interrupt()
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert tshark_names(out / "b.pcapng").count("late1") >= 3
    a = next(n for n in manifest["nodes"] if n["name"] == "a")
    facts = a["facts"]
    eth0 = next(i for i in facts["interfaces"] if i["name"] == "eth0")
    assert eth0["kind"] == "veth" and eth0["addresses"] == ["10.77.0.1/24"] and eth0["mtu"] == 1500
    assert eth0["peer_index"] is not None and eth0["mac"].count(":") == 5
    assert any(r.get("dst") == "10.99.0.0/16" and r.get("gateway") == "10.77.0.2" for r in facts["routes"])
    assert facts["sysctls"]["net.ipv4.ip_forward"] == "1"
    assert facts["sysctls"]["net.ipv4.conf.eth0.rp_filter"] in ("0", "1", "2")
    assert facts["versions"]["tcpdump"] and facts["versions"]["libpcap"]
    assert a["tcpdump"]["dropped"] == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.pcapng", "b.pcapng", "manifest.json", "merged.pcapng"]
    # merged.pcapng: one section (tshark 4.0 misnames interfaces of later sections), every node's packets in time order,
    # each interface's node in its description
    rows = subprocess.run(["tshark", "-r", str(out / "merged.pcapng"), "-T", "fields", "-E", "separator=|", "-e", "frame.section_number",
                           "-e", "frame.interface_name", "-e", "frame.interface_description", "-e", "frame.time_epoch"],
                          capture_output=True, text=True, timeout=120, check=True).stdout.splitlines()
    merged = [tuple(row.split("|")) for row in rows]
    assert {section for section, _, _, _ in merged} == {"1"}
    times = [float(t) for _, _, _, t in merged]
    assert times == sorted(times)
    per_node = {node: tshark_names(out / f"{node}.pcapng") for node in ("a", "b")}
    for node in ("a", "b"):  # each node's packets, in their order, under their own interface names
        assert [name for _, name, d, _ in merged if d.startswith(f"node={node};")] == per_node[node]
    table = read(manifest_inputs(str(out))).table.sort("ts", "input", maintain_order=True)
    again = read([InputSpec(str(out / "merged.pcapng"))]).table
    assert again.select("node", "iface", "ts").equals(table.select("node", "iface", "ts"))


@needs_root
def test_pod_capture_limits_to_the_pods_host_side_and_the_node_nic(netns: Namespaces, tmp_path: Path) -> None:
    two_nodes(netns)
    netns.add("web")
    netns.veth("a", "veth1234abcd", "web", "eth0")
    netns.ip("web", "addr", "add", "10.244.1.5/24", "dev", "eth0")
    netns.ip("web", "route", "add", "default", "via", "10.244.1.1")
    netns.ip("a", "addr", "add", "10.244.1.1/24", "dev", "veth1234abcd")
    netns.ip("a", "route", "add", "default", "via", "10.77.0.2")
    netns.ip("b", "route", "add", "10.244.1.0/24", "via", "10.77.0.1")
    netns.run("a", "sysctl", "-qw", "net.ipv4.ip_forward=1")
    netns.add("lonely")  # an interface the pod filter must leave out
    netns.veth("a", "vethdeadbeef", "lonely", "eth0")
    netns.ip("lonely", "addr", "add", "10.244.1.9/24", "dev", "eth0")
    out = tmp_path / "cap"
    running = Capturing(
        cniscope("capture", "--via", f"netns:{netns.prefix}", "--pod", "default/web", "--filter", "udp port 9999",
                 "--duration", "60", "-o", str(out))
    )
    netns.run("web", sys.executable, "-c", UDP_BLAST, "10.77.0.2", "20")
    netns.run("lonely", sys.executable, "-c", UDP_BLAST, "10.244.1.1", "20")
    code, err = running.interrupt()
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert [n["name"] for n in manifest["nodes"]] == ["a"]
    pod = manifest["pods"][0]
    assert (pod["node"], pod["ip"], pod["host_name"]) == ("a", "10.244.1.5", "veth1234abcd")
    assert "ifindex" in manifest["nodes"][0]["filter"]
    names = tshark_names(out / "a.pcapng")
    assert names.count("veth1234abcd") == 20 and names.count("eth0") == 20 and "vethdeadbeef" not in names


def test_default_settings_are_the_measured_ones() -> None:
    """Guard the choice documented in TcpdumpSettings: V3 ring (no immediate mode), 32 MiB, full snaplen, flush wait."""
    settings = TcpdumpSettings()
    assert (settings.immediate, settings.buffer_kib, settings.snaplen) == (False, 32768, 65535)
    assert settings.flush_s > 1.0
    assert TcpdumpSettings(immediate=True).flush_s == 0.0


def test_the_signal_handler_takes_no_lock() -> None:
    """SIGINT's handler runs between any two bytecodes of the main thread, also while that thread holds a lock: taking
    one there can deadlock. Session 21's capture that never ended after SIGINT (test_a_capture_that_drops_..., a 60 s
    timeout under load) was `Event.set` in the handler while the capture's loop sat in `Event.wait`, which holds the
    same lock. Every call the handler makes is recorded: none is into threading, none takes a lock."""
    signals = runner._Signals()
    calls: list[tuple[str, Any]] = []

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        calls.append((event, arg if event == "c_call" else frame.f_code))

    sys.setprofile(profile)
    try:
        signals._handle(signal.SIGINT, None)
    finally:
        sys.setprofile(None)
    assert signals.received
    locks = (type(threading.Lock()), type(threading.RLock()))
    assert not [code for event, code in calls if event == "call" and code.co_filename == threading.__file__]
    assert not [fn for event, fn in calls if event == "c_call" and isinstance(getattr(fn, "__self__", None), locks)]


def test_no_capture_left_after_tests() -> None:
    """Nothing from this process remains in /run/netns (fixtures delete by exact name)."""
    mine = f"cst-cap-{os.getpid()}-"
    leftovers = list(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []
    assert not any(name.startswith(mine) for name in leftovers)


@needs_root
def test_count_and_size_limits_stop_every_node(netns: Namespaces, tmp_path: Path) -> None:
    two_nodes(netns)
    base = ["capture", "--via", f"netns:{netns.prefix}", "--nodes", "a,b", "--filter", "udp port 9999", "--duration", "60"]
    counted = Capturing(cniscope(*base, "--count", "5", "-o", str(tmp_path / "count")))
    netns.run("a", sys.executable, "-c", UDP_BLAST, "10.77.0.2", "20")
    code, err = counted.finish()
    assert code == 0, err
    manifest = json.loads((tmp_path / "count" / "manifest.json").read_text())
    assert manifest["stop_reason"] == "count"
    assert [n["packets"] for n in manifest["nodes"]] == [5, 5]
    sized = Capturing(cniscope(*base, "--max-size", "0.2", "-o", str(tmp_path / "size")))
    netns.run("a", sys.executable, "-c", UDP_BLAST, "10.77.0.2", str(BURST))
    code, err = sized.finish()
    assert code == 0, err
    manifest = json.loads((tmp_path / "size" / "manifest.json").read_text())
    assert manifest["stop_reason"] == "max-size"
    assert max(n["bytes"] for n in manifest["nodes"]) >= 200_000


@needs_root
def test_errors_are_reported_and_leave_nothing_running(netns: Namespaces, tmp_path: Path) -> None:
    two_nodes(netns)
    bad_filter = subprocess.run(
        cniscope("capture", "--via", f"netns:{netns.prefix}", "--nodes", "a,b", "--filter", "tcp port 80 and (", "-o", str(tmp_path / "x")),
        capture_output=True, text=True, timeout=120,
    )
    assert bad_filter.returncode == 2, bad_filter.stderr
    assert "refused the filter" in bad_filter.stderr and "Traceback" not in bad_filter.stderr
    missing = subprocess.run(
        cniscope("capture", "--via", f"netns:{netns.prefix}", "--nodes", "a,nosuchnode", "-o", str(tmp_path / "y")),
        capture_output=True, text=True, timeout=120,
    )
    assert missing.returncode == 5, missing.stderr
    assert "nosuchnode" in missing.stderr and "Traceback" not in missing.stderr
    for name in ("a", "b"):
        assert all(comm(pid) not in ("tcpdump", "timeout") for pid in netns.pids(name))


@needs_root
def test_local_transport_inside_a_namespace(netns: Namespaces, tmp_path: Path) -> None:
    """--via local records the namespace it runs in (here a test namespace, never the host's)."""
    two_nodes(netns)
    out = tmp_path / "cap"
    running = Capturing(["ip", "netns", "exec", netns.prefix + "a", *cniscope("capture", "--nodes", "self", "--duration", "60", "-o", str(out))])
    netns.run("a", sys.executable, "-c", UDP_BLAST, "10.77.0.2", "4")
    code, err = running.interrupt()
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["transport"] == {"kind": "local"} and manifest["nodes"][0]["name"] == "self"
    assert tshark_names(out / "self.pcapng").count("eth0") >= 4

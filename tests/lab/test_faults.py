"""Every fault, injected into a fresh lab: the traffic works before and breaks after, where expected."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import polars as pl
import pytest

from cniscope.lab.capture import capture
from cniscope.lab.cluster import Lab
from cniscope.lab.naming import veth_name
from cniscope.lab.spec import Fault, default_spec
from cniscope.packets.schema import ip4_value

from .conftest import lab_name, needs_root
from .helpers import read_captures, syn_sightings

pytestmark = needs_root
CURL_TIMEOUT = 28  # curl's exit status when --max-time ran out


@pytest.fixture
def lab(request: pytest.FixtureRequest) -> Iterator[Lab]:
    model = getattr(request, "param", "kube-router")
    with Lab.up(default_spec(model, nodes=2, name=lab_name(request.node.name[5:20].replace("_", "-").strip("-[")))) as built:
        yield built


def works(lab: Lab, source: str, target: str, path: str = "/") -> bool:
    return lab.curl(source, target, path, max_time=2).returncode == 0


def test_drop_at_a_hop(lab: Lab, tmp_path) -> None:
    assert works(lab, "client1", "web2")
    lab.fault(Fault("drop", {"node": "node2", "iface": "kube-bridge", "dir": "out"}))
    captures, result = capture(lab, ["node2"], tmp_path, lambda: lab.curl("client1", "web2", max_time=1))
    assert result.returncode == CURL_TIMEOUT
    seen = syn_sightings(read_captures(captures), "node2", "10.244.2.10")
    assert set(seen["iface"].to_list()) == {"eth0"}  # arrives on the NIC, never reaches kube-bridge or the veth
    assert works(lab, "client1", "web1")  # other paths are untouched


def test_mtu_lowered_on_a_link(lab: Lab, tmp_path) -> None:
    lab.fault(Fault("mtu", {"node": "node2", "iface": "eth0", "mtu": "1400"}))
    captures, result = capture(lab, ["node2"], tmp_path, lambda: lab.curl("client1", "web2", "/big", max_time=3))
    assert result.returncode == 0  # path MTU discovery recovers ...
    table = read_captures(captures)
    frag_needed = table.filter((pl.col("icmp_type") == 3) & (pl.col("icmp_code") == 4))
    assert frag_needed.height > 0  # ... because node2 tells web2 the packets are too big
    assert set(frag_needed["icmp_mtu"].to_list()) == {1400}
    assert set(frag_needed["dst"].to_list()) == {ip4_value("10.244.2.10")}


def test_mtu_black_hole(lab: Lab) -> None:
    assert works(lab, "client1", "web2", "/big")
    lab.fault(Fault("mtu", {"node": "node2", "iface": "eth0", "mtu": "1400", "blackhole": "yes"}))
    assert works(lab, "client1", "web2")  # small answers still fit
    assert lab.curl("client1", "web2", "/big", max_time=2).returncode == CURL_TIMEOUT  # full-size segments vanish


def test_strict_rp_filter_with_asymmetric_route(lab: Lab, tmp_path) -> None:
    assert works(lab, "client1", "web2")
    lab.fault(Fault("rp-filter", {"node": "node2", "source": "10.244.1.11/32"}))
    captures, result = capture(lab, ["node2"], tmp_path, lambda: lab.curl("client1", "web2", max_time=1))
    assert result.returncode == CURL_TIMEOUT
    assert set(syn_sightings(read_captures(captures), "node2", "10.244.2.10")["iface"].to_list()) == {"eth0"}
    assert works(lab, "web1", "web2")  # another source still passes the reverse-path check


def test_missing_route(lab: Lab) -> None:
    assert works(lab, "client1", "web2")
    lab.fault(Fault("missing-route", {"node": "node1", "prefix": "10.244.2.0/24"}))
    assert not works(lab, "client1", "web2")
    assert works(lab, "client1", "web1")


def test_br_netfilter_off_breaks_same_node_service(lab: Lab) -> None:
    assert works(lab, "client1", "web-local")
    lab.fault(Fault("br-netfilter-off", {"node": "node1"}))
    result = lab.curl("client1", "web-local", max_time=2)  # the reply comes back from web1's own address: not un-NATed
    assert result.returncode != 0
    assert works(lab, "client1", "web")  # the backend on another node is routed, so still un-NATed


def test_hairpin_off(lab: Lab) -> None:
    assert works(lab, "web1", "web-local")
    lab.fault(Fault("hairpin-off", {"node": "node1", "pod": "web1"}))
    assert "hairpin off" in lab.exec("node1", ["bridge", "-d", "link", "show", "dev", veth_name("web1")]).stdout
    assert not works(lab, "web1", "web-local")
    assert works(lab, "client1", "web-local")


# Two requests on one kept-alive connection, a line on stdin between them; prints what each got.
KEEPALIVE_CLIENT = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
request = b"GET / HTTP/1.1\\r\\nHost: lab\\r\\n\\r\\n"
s = socket.create_connection((host, port), timeout=3)
for round in (1, 2):
    if round == 2:
        sys.stdin.readline()
    try:
        s.sendall(request)
        answer = s.recv(4096)
        print("answer" if answer.startswith(b"HTTP/1.1 200") else "closed", flush=True)
    except ConnectionResetError:
        print("reset", flush=True)
    except socket.timeout:
        print("timeout", flush=True)
"""


def test_conntrack_flushed_mid_connection(lab: Lab) -> None:
    """A NodePort connection loses its DNAT/masquerade tuple half-way: re-NATed to a new port, it is reset."""
    host, port = lab.address("node2:30080").split(":")
    client = subprocess.Popen(["ip", "netns", "exec", lab.ns("node1"), sys.executable, "-c", KEEPALIVE_CLIENT, host, port],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout is not None and client.stdin is not None
        assert client.stdout.readline().strip() == "answer"
        lab.fault(Fault("conntrack-flush", {"node": "node2"}))
        out, _ = client.communicate("go\n", timeout=10)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert out.strip() == "reset"
    assert works(lab, "node1", "node2:30080")  # new connections are fine

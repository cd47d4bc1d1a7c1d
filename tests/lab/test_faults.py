"""Every fault, injected into a fresh lab: the traffic works before and breaks after, where expected."""

from __future__ import annotations

from collections.abc import Iterator

import polars as pl
import pytest

from cniscope.lab.cluster import Lab
from cniscope.lab.naming import veth_name
from cniscope.lab.record import capture
from cniscope.lab.spec import Fault, default_spec
from cniscope.packets.schema import ip4_value
from tests.marks import needs_root

from .conftest import lab_name
from .helpers import conntrack_flushed_mid_connection, read_captures, syn_sightings

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


def test_conntrack_flushed_mid_connection(lab: Lab) -> None:
    """A NodePort connection loses its DNAT/masquerade tuple half-way: re-NATed to a new port, it is reset."""
    assert conntrack_flushed_mid_connection(lab) == ("answer", "reset")
    assert works(lab, "node1", "node2:30080")  # new connections are fine

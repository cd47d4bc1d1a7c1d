"""Named scenarios record the textbook capture of each traffic kind."""

from __future__ import annotations

import polars as pl

from cniscope.inventory import load as load_inventory
from cniscope.lab.cluster import Lab
from cniscope.lab.scenarios import SCENARIOS, record
from cniscope.lab.spec import default_spec
from cniscope.packets.schema import ip4_value
from tests.marks import needs_root

from .conftest import lab_name
from .helpers import read_captures

pytestmark = needs_root


def test_every_scenario_is_recorded(tmp_path) -> None:
    with Lab.up(default_spec("flannel-host-gw", 2, name=lab_name("scen"))) as lab:
        recorded = {name: record(lab, name, tmp_path) for name in SCENARIOS}
    assert {name: r.ok for name, r in recorded.items()} == dict.fromkeys(SCENARIOS, True)
    assert recorded["same-node"].body == "web1 on node1\n"
    inventory = load_inventory(str(recorded["node-port"].inventory))
    assert inventory.describe("192.168.200.12", 30080) == "node node2, NodePort 30080 of service default/web"
    cluster_ip = read_captures(recorded["cluster-ip"].captures)
    syn = cluster_ip.filter((pl.col("tcp_flags") == 2) & (pl.col("node") == "node1")).sort("ts")
    # the client's veth shows the ClusterIP, node1's NIC the backend (DNAT in node1's PREROUTING)
    assert syn["dst"].to_list()[0] == ip4_value("10.96.0.10")
    assert syn["dst"].to_list()[-1] == ip4_value("10.244.2.10") and syn["iface"].to_list()[-1] == "eth0"
    node_port = read_captures(recorded["node-port"].captures)
    at_node2 = node_port.filter((pl.col("tcp_flags") == 2) & (pl.col("node") == "node2")).sort("ts")
    assert at_node2.select("iface", "dst", "dport").row(0) == ("eth0", ip4_value("192.168.200.12"), 30080)
    # DNATed to the pod and masqueraded to the address of the interface it leaves by (cni0)
    assert at_node2.select("src", "dst", "dport").row(-1) == (ip4_value("10.244.2.1"), ip4_value("10.244.2.10"), 80)

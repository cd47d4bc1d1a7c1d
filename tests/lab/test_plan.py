"""Plans are data: checked without root."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from cniscope.cli import cli
from cniscope.errors import InputError, UsageError
from cniscope.host import Command
from cniscope.lab import kubeproxy
from cniscope.lab.builders import plan_lab
from cniscope.lab.faults import KINDS, parse_fault, plan_fault
from cniscope.lab.naming import antrea_port, cali_name, veth_name, weave_port
from cniscope.lab.spec import Fault, default_spec, load_spec, seed_spec
from cniscope.lab.steps import Bridge, Daemon, File, Ip, Iptables, Netns, Sysctl, WaitRoutes, render_plan

from .helpers import BUILDABLE


def ip_lines(steps, ns_suffix: str) -> list[str]:
    return [" ".join(s.args) for s in steps if isinstance(s, Ip) and s.ns.endswith(ns_suffix)]


@pytest.mark.parametrize("model", BUILDABLE)
def test_every_namespace_carries_the_lab_prefix(model: str) -> None:
    steps = plan_lab(default_spec(model, 3, name="p1"))
    names = [s.name for s in steps if isinstance(s, Netns)]
    assert names == [f"cnl-p1-{m}" for m in ("underlay", "node1", "node2", "node3", "web1", "client1", "web2", "web3")]
    touched = {s.ns for s in steps if hasattr(s, "ns")}
    assert touched <= set(names)


def test_kube_router_plan() -> None:
    steps = plan_lab(default_spec("kube-router", 3, name="p1"))
    node3 = ip_lines(steps, "-node3")
    assert "link add kube-bridge type bridge" in node3
    assert "addr add 10.244.3.1/24 dev kube-bridge" in node3
    assert f"link set {veth_name('web3')} type bridge_slave hairpin on" in node3
    assert "route add default via 10.244.3.1 dev eth0" in ip_lines(steps, "-web3")
    birds = [s for s in steps if isinstance(s, Daemon) and s.name.startswith("bird")]
    assert [b.ns for b in birds] == ["cnl-p1-node1", "cnl-p1-node2", "cnl-p1-node3"]
    waits = {s.ns: s.prefixes for s in steps if isinstance(s, WaitRoutes)}
    assert waits["cnl-p1-node3"] == ("10.244.1.0/24", "10.244.2.0/24")
    sockets = {b.argv[b.argv.index("-s") + 1] for b in birds}
    assert len(sockets) == 3 and all("/p1/" in s for s in sockets)  # per-lab, per-node control sockets


def test_flannel_vxlan_plan_programs_like_flanneld() -> None:
    steps = plan_lab(default_spec("flannel-vxlan", 2, name="p1"))
    node1 = ip_lines(steps, "-node1")
    vxlan = next(line for line in node1 if line.startswith("link add flannel.1"))
    for part in ("id 1", "dstport 8472", "nolearning", "mtu 1450", "local 192.168.200.11"):
        assert part in vxlan
    assert "link add cni0 mtu 1450 type bridge" in node1
    assert "route add 10.244.2.0/24 via 10.244.2.0 dev flannel.1 onlink" in node1
    neigh = next(line for line in node1 if line.startswith("neigh replace 10.244.2.0"))
    mac = neigh.split()[4]
    fdb = [" ".join(s.args) for s in steps if isinstance(s, Bridge) and s.ns.endswith("-node1")]
    assert fdb == [f"fdb replace {mac} dev flannel.1 dst 192.168.200.12 self permanent"]


def test_host_gw_routes_via_node_ips() -> None:
    steps = plan_lab(default_spec("flannel-host-gw", 3, name="p1"))
    assert "route add 10.244.1.0/24 via 192.168.200.11 dev eth0" in ip_lines(steps, "-node2")
    assert not any("flannel.1" in line for line in ip_lines(steps, "-node2"))


@pytest.mark.parametrize("model", ["calico-bgp", "calico-vxlan"])
def test_calico_plan(model: str) -> None:
    steps = plan_lab(default_spec(model, 2, name="p1"))
    cali = cali_name("web2")
    node2 = ip_lines(steps, "-node2")
    assert any(line.startswith(f"link add {cali} address ee:ee:ee:ee:ee:ee") for line in node2)
    assert f"route add 10.244.2.10/32 dev {cali} scope link" in node2
    assert "route add 169.254.1.1 dev eth0 scope link" in ip_lines(steps, "-web2")
    sysctls = {(s.key, s.value) for s in steps if isinstance(s, Sysctl) and s.ns.endswith("-node2")}
    assert (f"net.ipv4.conf.{cali}.proxy_arp", "1") in sysctls
    assert not any("bridge" in line for line in node2)
    if model == "calico-vxlan":
        vxlan = next(line for line in node2 if line.startswith("link add vxlan.calico"))
        assert "id 4096" in vxlan and "dstport 4789" in vxlan and "mtu 1450" in vxlan
        assert "route add blackhole 10.244.2.0/26" in node2


def test_kube_proxy_chains() -> None:
    payload = kubeproxy.nat_payload(default_spec("kube-router", 3, name="p1"))
    lines = payload.splitlines()
    assert lines[0] == "*nat" and lines[-1] == "COMMIT"
    assert any(line.startswith("-A PREROUTING") and line.endswith("-j KUBE-SERVICES") for line in lines)
    assert any(line.startswith("-A OUTPUT") and line.endswith("-j KUBE-SERVICES") for line in lines)
    assert "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000" in lines
    assert any("MASQUERADE" in line and line.startswith("-A KUBE-POSTROUTING") for line in lines)
    dnat = [line for line in lines if "DNAT" in line]
    assert len(dnat) == 2 and any("--to-destination 10.244.3.10:80" in line for line in dnat)
    nodeports = [line for line in lines if line.startswith("-A KUBE-NODEPORTS")]
    assert nodeports and all("--dport 30080" in line for line in nodeports)
    assert [line for line in lines if line.startswith("-A KUBE-SERVICES")][-1].endswith("-j KUBE-NODEPORTS")


def test_kube_proxy_spreads_endpoints_like_kube_proxy() -> None:
    spec = default_spec("kube-router", 3, name="p1")
    from dataclasses import replace

    from cniscope.lab.spec import Service

    spec = replace(spec, services=(Service("web", "10.96.0.10", ("web1", "web2", "web3")),))
    jumps = [line for line in kubeproxy.nat_payload(spec).splitlines() if "-j KUBE-SEP-" in line and "KUBE-SVC-" in line]
    assert ["0.33333333333" in jumps[0], "0.50000000000" in jumps[1], "probability" in jumps[2]] == [True, True, False]


def test_fault_plans() -> None:
    spec = default_spec("kube-router", 3, name="p1")
    drop = plan_fault(spec, parse_fault("drop", ["node=node3", "iface=kube-bridge", "dir=out"]))
    assert isinstance(drop[0], Iptables) and "-I FORWARD -o kube-bridge" in drop[0].payload
    assert drop[0].ns == "cnl-p1-node3"
    mtu = plan_fault(spec, Fault("mtu", {"node": "underlay", "iface": "port3", "mtu": "1400"}))
    assert mtu == [Ip("cnl-p1-underlay", ("link", "set", "dev", "port3", "mtu", "1400"))]
    rp = plan_fault(spec, Fault("rp-filter", {"node": "node3", "source": "10.244.1.11"}))
    assert Ip("cnl-p1-node3", ("route", "add", "10.244.1.11/32", "dev", "eth1")) in rp
    assert Sysctl("cnl-p1-node3", "net.ipv4.conf.eth0.rp_filter", "1") in rp
    hairpin = plan_fault(spec, Fault("hairpin-off", {"node": "node1", "pod": "web1"}))
    assert hairpin[0].args[-2:] == ("hairpin", "off")
    assert set(KINDS) == {"drop", "mtu", "rp-filter", "missing-route", "br-netfilter-off", "hairpin-off", "conntrack-flush"}


@pytest.mark.parametrize(
    ("kind", "args", "message"),
    [
        ("drop", ["node=node3"], "missing iface"),
        ("drop", ["node=node9", "iface=eth0"], "no node named 'node9'"),
        ("mtu", ["node=node1", "iface=eth0", "mtu=big"], "mtu must be"),
        ("nonsense", [], "unknown fault"),
        ("drop", ["node=node3", "iface=eth0", "colour=red"], "unknown colour"),
        ("drop", ["node3"], "expected KEY=VALUE"),
        ("rp-filter", ["node=node1", "source=10.0.0.300"], "source must be an address"),
        ("missing-route", ["node=node1", "prefix=default;x"], "prefix must be an address"),
    ],
)
def test_bad_faults_are_refused(kind: str, args: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        plan_fault(default_spec("kube-router", 3, name="p1"), parse_fault(kind, args))


@pytest.mark.parametrize("model", ["calico-bgp", "antrea-geneve"])
def test_hairpin_fault_refused_without_a_linux_bridge(model: str) -> None:
    with pytest.raises(UsageError, match="no Linux bridge"):
        plan_fault(default_spec(model, 2, name="p1"), Fault("hairpin-off", {"node": "node1", "pod": "web1"}))


def test_hairpin_fault_on_weave_names_its_pod_veth() -> None:
    steps = plan_fault(default_spec("weave", 2, name="p1"), Fault("hairpin-off", {"node": "node1", "pod": "web1"}))
    assert [" ".join(s.args) for s in steps] == [f"link set {weave_port('web1')} type bridge_slave hairpin off"]


def test_seed_spec_is_the_seed_cluster() -> None:
    spec = seed_spec()
    assert spec.model == "kube-router"
    assert [(n.name, n.ip) for n in spec.nodes][::2] == [("master2", "192.168.200.21"), ("node3", "192.168.200.23")]
    assert spec.pod("nginx").ip == "10.244.3.10" and spec.node("node3").pod_cidr == "10.244.3.0/24"


def test_yaml_spec_round_trip(tmp_path) -> None:
    path = tmp_path / "lab.yaml"
    path.write_text(
        "name: mine\nmodel: flannel-host-gw\n"
        "nodes:\n  - {name: a, ip: 192.168.200.31, pod_cidr: 10.244.7.0/24}\n"
        "pods:\n  - {name: p, node: a, ip: 10.244.7.5}\n"
        "services:\n  - {name: s, cluster_ip: 10.96.1.1, pods: [p], node_port: 30100}\n"
        "faults:\n  - {kind: br-netfilter-off, node: a}\n"
    )
    spec = load_spec(path)
    assert spec.name == "mine" and spec.services[0].node_port == 30100
    assert spec.faults == (Fault("br-netfilter-off", {"node": "a"}),)
    assert "sysctl -q -w net.bridge.bridge-nf-call-iptables=0" in render_plan(plan_lab(spec))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: kube-router\nnodes: []\n", "at least one node"),
        ("model: kube-router\nnodes:\n  - {name: a, ip: 10.0.0.1, pod_cidr: 10.244.1.0/24}\n", "must be in 192.168.200.0/24"),
        ("model: kube-router\nnodes:\n  - {name: a, ip: 192.168.200.5, pod_cidr: 10.244.1.0/24}\n"
         "pods:\n  - {name: p, node: a, ip: 10.244.2.5}\n", "inside a's pod CIDR"),
        ("model: nope\nnodes: []\n", "unknown model"),
        ("model: [unclosed\n", "not valid YAML"),
        ("model: kube-router\n", "missing or malformed field"),
    ],
)
def test_bad_specs_name_the_problem(tmp_path, text: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        load_spec(path)


def test_dry_run_prints_the_plan_without_root() -> None:
    result = CliRunner().invoke(cli, ["lab", "up", "flannel-vxlan", "--nodes", "2", "--name", "dry", "--dry-run"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "ip netns add cnl-dry-underlay"
    assert "ip -n cnl-dry-node1 link set flannel.1 up" in lines
    assert any(line.startswith("ip netns exec cnl-dry-web1 nginx -e ") for line in lines)


def test_fault_dry_run_needs_an_existing_lab() -> None:
    result = CliRunner().invoke(cli, ["lab", "fault", "no-such-lab-xyz", "drop", "node=node1", "iface=eth0", "--dry-run"])
    assert result.exit_code != 0
    assert "no lab named 'no-such-lab-xyz'" in str(result.exception)


OVS_PROGRAMS = ("ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovs-appctl")


@pytest.mark.parametrize("model", ["antrea-geneve", "weave"])
def test_open_vswitch_stays_inside_the_lab(model: str, tmp_path) -> None:
    """Every Open vSwitch program runs in a node's namespace and names only that node's folder: never the host's OVS."""
    steps = plan_lab(default_spec(model, 2, name="p1"), root=tmp_path)
    ovs = [s for s in steps if isinstance(s, (Command, Daemon)) and any(p in s.argv for p in OVS_PROGRAMS)]
    where = {step: step.ns if isinstance(step, Daemon) else step.argv[step.argv.index("exec") + 1] for step in ovs}
    assert set(where.values()) == {"cnl-p1-node1", "cnl-p1-node2"}
    for step in ovs:
        folder = str(tmp_path / "nodes" / where[step].removeprefix("cnl-p1-"))
        values = (a.split("=", 1)[-1].removeprefix("unix:").removeprefix("punix:") for a in step.argv)
        paths = [v for v in values if v.startswith("/")]
        assert paths and all(p.startswith(folder + "/") or p == folder or p.startswith("/usr/share/openvswitch/")
                             for p in paths), step.argv
        program = next(p for p in OVS_PROGRAMS if p in step.argv)
        if program in ("ovsdb-server", "ovs-vswitchd"):  # every default path of the daemons points into the folder
            assert {f"OVS_{d}DIR={folder}" for d in ("RUN", "LOG", "DB")} <= set(step.argv)
        if program == "ovs-vsctl":
            assert f"--db=unix:{folder}/db.sock" in step.argv
        if program == "ovs-appctl":
            assert f"--target={folder}/ovs-vswitchd.ctl" in step.argv
    daemons = [s.name for s in ovs if isinstance(s, Daemon)]
    assert daemons == ["ovsdb-server node1", "ovsdb-server node2", "ovs-vswitchd node1", "ovs-vswitchd node2"]  # together


def test_antrea_pipeline_forwards_like_antrea() -> None:
    steps = plan_lab(default_spec("antrea-geneve", 2, name="p1"))
    flows = next(s.content for s in steps if isinstance(s, File) and s.path.endswith("node1/br-int.flows")).splitlines()
    to_node2 = [f for f in flows if "nw_dst=10.244.2.0/24" in f]
    assert to_node2 == ["table=4,priority=200,ip,nw_dst=10.244.2.0/24 actions=mod_dl_src:02:a0:0a:f4:01:01,"
                        "mod_dl_dst:aa:bb:cc:dd:ee:ff,set_field:192.168.200.12->tun_dst,goto_table:6"]
    assert any("ct_state=+new+trk,tcp,nw_dst=10.96.0.10,tp_dst=80 actions=group:1" in f for f in flows)  # AntreaProxy
    groups = next(s.content for s in steps if isinstance(s, File) and s.path.endswith("node1/br-int.groups"))
    assert "nat(dst=10.244.2.10:80)" in groups
    node1 = ip_lines(steps, "-node1")
    assert "route add 10.244.2.0/24 via 10.244.2.1 dev antrea-gw0 onlink" in node1
    assert "addr add 192.168.200.11/24 dev br-phy" in node1 and "addr add 192.168.200.11/24 dev eth0" not in node1
    assert f"link set {antrea_port('web1')} arp off up" in node1


def test_flannel_udp_relay_per_node() -> None:
    steps = plan_lab(default_spec("flannel-udp", 3, name="p1"))
    relays = [s for s in steps if isinstance(s, Daemon) and s.name.startswith("flanneld-udp")]
    assert [r.ns for r in relays] == ["cnl-p1-node1", "cnl-p1-node2", "cnl-p1-node3"]
    argv = " ".join(relays[0].argv)
    assert "-m cniscope.lab.relay --dev flannel0 --mtu 1472 --address 10.244.1.0/16 --listen 192.168.200.11" in argv
    assert "--peer 10.244.2.0/24=192.168.200.12 --peer 10.244.3.0/24=192.168.200.13" in argv
    assert "link add cni0 mtu 1472 type bridge" in ip_lines(steps, "-node1")

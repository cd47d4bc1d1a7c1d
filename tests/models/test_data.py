"""The model tables: names real nodes show match their roles, paths are well formed, the CLI pages render them."""

from __future__ import annotations

import ipaddress
import re

import pytest
from click.testing import CliRunner

from cniscope.cli import cli
from cniscope.models import MODELS, NAMES, PROXIES, TUNNEL_PORTS
from cniscope.models.base import Role
from cniscope.models.evidence import Shape
from cniscope.models.infer import model_shapes
from cniscope.models.shapes import reply
from cniscope.packets.schema import Tunnel

# Interface names as real nodes show them (LAB-NOTES, the corpus notes, `ip link` output quoted in the models' sources).
REAL_NAMES = [
    ("kube-router", "kube-bridge", Role.POD_BRIDGE),
    ("kube-router", "kube-dummy-if", Role.SERVICE_DUMMY),
    ("kube-router", "veth9c3f2a1b", Role.HOST_VETH),
    ("kube-router", "tun-10001", Role.TUNNEL),
    ("kube-router", "tun-3f9c2d1a7b0", Role.TUNNEL),
    ("flannel-vxlan", "flannel.1", Role.TUNNEL),
    ("flannel-vxlan", "cni0", Role.POD_BRIDGE),
    ("flannel-vxlan", "veth822966d6", Role.HOST_VETH),
    ("flannel-udp", "flannel0", Role.TUNNEL),
    ("calico-ipip", "cali747350e5fc9", Role.HOST_VETH),
    ("calico-ipip", "tunl0", Role.TUNNEL),
    ("calico-vxlan", "vxlan.calico", Role.TUNNEL),
    ("cilium-vxlan", "lxc8b528e748ff4", Role.HOST_VETH),
    ("cilium-vxlan", "cilium_host", Role.GATEWAY),
    ("cilium-vxlan", "cilium_vxlan", Role.TUNNEL),
    ("cilium-geneve", "cilium_geneve", Role.TUNNEL),
    ("weave", "weave", Role.POD_BRIDGE),
    ("weave", "vethwepl0e18de4", Role.HOST_VETH),
    ("weave", "vethwe-datapath", Role.DATAPATH),
    ("weave", "vxlan-6784", Role.TUNNEL),
    ("antrea-geneve", "antrea-gw0", Role.GATEWAY),
    ("antrea-geneve", "antrea-tun0", Role.TUNNEL),
    ("antrea-geneve", "coredns--e526c8", Role.HOST_VETH),
]


@pytest.mark.parametrize(("model", "name", "role"), REAL_NAMES)
def test_real_interface_names_take_their_roles(model: str, name: str, role: Role) -> None:
    pattern = MODELS[model].role_of(name)
    assert pattern is not None and pattern.role is role


def test_names_of_one_model_are_not_claimed_strongly_by_another() -> None:
    for model, name, _ in REAL_NAMES:
        for other in MODELS.values():
            found = other.role_of(name)
            if other.family != MODELS[model].family and found is not None:
                assert found.weight < 3, (name, model, other.name)


@pytest.mark.parametrize("name", NAMES)
def test_model_table_is_well_formed(name: str) -> None:
    model = MODELS[name]
    assert model.service_proxy in PROXIES
    assert 0 < model.prior <= 1 and 0 <= model.bgp <= 1
    assert model.sources and model.summary
    for p in model.ifaces:
        re.compile(p.regex)
    for cidr in model.pod_cidrs + model.service_cidrs:
        ipaddress.ip_network(cidr)
    for path in model.paths:
        assert path.steps and all(s.direction in ("In", "Out") for s in path.steps)
        for s in path.steps:
            assert len(s.iface) <= 15, s.iface  # IFNAMSIZ
        assert reply(reply(path.steps)) == path.steps
    assert len({p.traffic for p in model.paths}) == len(model.paths)


def test_bridges_hide_forwarded_frames_and_routed_veths_show_two() -> None:
    """The facts the copy counting rests on (LAB-NOTES): 3 copies into a kube-router pod, 2 with calico, 4 with flannel VXLAN."""
    assert Shape(3, False, False) in model_shapes(MODELS["kube-router"])
    assert Shape(3, False, False) not in model_shapes(MODELS["calico-bgp"])
    assert Shape(2, False, False) in model_shapes(MODELS["calico-bgp"])
    assert Shape(4, True, False) in model_shapes(MODELS["flannel-vxlan"])
    assert Shape(3, True, False) in model_shapes(MODELS["calico-vxlan"])


def test_cli_lists_every_model() -> None:
    result = CliRunner().invoke(cli, ["models"])
    assert result.exit_code == 0
    for name in NAMES:
        assert name in result.output
    assert "kube-proxy-ipvs" in result.output


def test_cli_show_prints_the_textbook_page_from_the_table() -> None:
    result = CliRunner().invoke(cli, ["models", "show", "flannel-vxlan"])
    assert result.exit_code == 0
    text = result.output
    assert "UDP 8472, VNI 1" in text and "flannel.1" in text and "MSS 1410" in text
    assert "pod to pod, across nodes" in text
    assert "flannel.1 In [" not in text  # the decapsulated hop carries no envelope
    assert "eth0 In [encapsulated] -> flannel.1 In -> cni0 Out -> vethXXXXXXXX Out" in text


def test_cli_show_rejects_an_unknown_model() -> None:
    result = CliRunner().invoke(cli, ["models", "show", "bogus"])
    assert result.exit_code == 2
    assert "bogus" in result.output


def test_the_default_tunnel_ports_are_every_models_envelope() -> None:
    """The decoders' default port table is derived from the models' Encap declarations, nothing written twice."""
    declared = {(e.port, e.kind) for m in MODELS.values() for e in m.encaps if e.port is not None}
    assert set(TUNNEL_PORTS.by_port.items()) == declared
    assert TUNNEL_PORTS.kind(8472) == TUNNEL_PORTS.kind(4789) == TUNNEL_PORTS.kind(6784) == Tunnel.VXLAN
    assert (TUNNEL_PORTS.kind(6081), TUNNEL_PORTS.kind(8285), TUNNEL_PORTS.kind(6080)) == (Tunnel.GENEVE, Tunnel.FLANNEL_UDP,
                                                                                          Tunnel.NONE)

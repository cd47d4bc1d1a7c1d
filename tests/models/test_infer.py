"""Inference: the corpus gives the models its notes name; signatures decide as the projects' facts say."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cniscope.models import MODELS, NAMES
from cniscope.models.infer import UnknownModel, infer, ttl_at_tunnel
from cniscope.packets.schema import Tunnel, ip4_value, mac_value
from tests.paths import CORPUS, SEED

from .helpers import CORPUS_TRUTH, inventory, journeys_of, load_capture, table_of


def test_the_eleven_names() -> None:
    assert set(NAMES) == {
        "kube-router", "flannel-vxlan", "flannel-host-gw", "flannel-udp", "calico-bgp", "calico-ipip",
        "calico-vxlan", "cilium-vxlan", "cilium-geneve", "weave", "antrea-geneve",
    }


@pytest.mark.parametrize("name", sorted(CORPUS_TRUTH))
def test_corpus_capture_gives_the_model_its_note_names(name: str) -> None:
    loaded = load_capture(CORPUS / name)
    verdict = infer(loaded.table, loaded.journeys)
    truth = CORPUS_TRUTH[name]
    assert verdict.name != "unknown", verdict.evidence
    assert truth in (verdict.name, MODELS[verdict.name].family), (verdict.name, verdict.evidence)
    assert verdict.evidence and all(isinstance(line, str) and line for line in verdict.evidence)
    assert 0.0 < verdict.confidence <= 1.0
    assert verdict.candidates[0][0] == verdict.name


def test_every_corpus_file_is_covered() -> None:
    captures = {p.name for p in CORPUS.iterdir() if p.suffix in (".pcap", ".txt", ".pcapng")}
    assert captures == set(CORPUS_TRUTH)


def test_seed_without_inventory_is_a_bridged_direct_routing_model() -> None:
    loaded = load_capture(SEED)
    verdict = infer(loaded.table, loaded.journeys)
    top = {verdict.name, verdict.runner_up}
    assert top == {"kube-router", "flannel-host-gw"}, verdict
    assert any("3 copies" in line for line in verdict.evidence)


@pytest.mark.parametrize("fixture", ["seed-node3.yaml", "kube-router-cluster.json"])
def test_seed_with_inventory_is_kube_router(fixture: str) -> None:
    loaded = load_capture(SEED)
    without = infer(loaded.table, loaded.journeys)
    verdict = infer(loaded.table, loaded.journeys, inventory(fixture))
    assert verdict.name == "kube-router"
    assert verdict.confidence > without.confidence
    assert verdict.confidence > 0.9
    assert verdict.runner_up is None


def test_forced_model_is_reported_as_forced() -> None:
    loaded = load_capture(SEED)
    verdict = infer(loaded.table, loaded.journeys, force="calico-bgp")
    assert verdict.name == "calico-bgp" and verdict.forced
    assert verdict.confidence < 0.1  # the capture speaks against it, and the verdict says so
    assert any(line.endswith("(against calico-bgp)") for line in verdict.evidence)
    with pytest.raises(UnknownModel, match="not a model"):
        infer(loaded.table, loaded.journeys, force="nope")


def test_nothing_to_go_on_is_unknown() -> None:
    table = table_of([{"ip_version": 4, "src": ip4_value("10.1.2.3"), "dst": ip4_value("10.1.2.4"), "proto": 1, "ttl": 64}])
    verdict = infer(table, journeys_of(table))
    assert verdict.name == "unknown" and verdict.confidence == 0.0


def _tunnelled(kind: Tunnel, port: int | None, vni: int | None, **extra) -> list[dict]:
    rows = []
    for i in range(4):
        rows.append({
            "ts": 1_000_000_000 * i, "ip_version": 4, "src": ip4_value("10.9.1.5"), "dst": ip4_value("10.9.2.7"),
            "proto": 1, "icmp_type": 8, "icmp_id": 7, "icmp_seq": i, "ttl": 63,
            "tunnel": int(kind), "vni": vni, "outer_src": ip4_value("172.16.0.1"), "outer_dst": ip4_value("172.16.0.2"),
            "outer_dport": port, **extra,
        })
    return rows


@pytest.mark.parametrize(("kind", "port", "vni", "extra", "expected"), [
    (Tunnel.VXLAN, 8472, 1, {}, "flannel-vxlan"),
    (Tunnel.VXLAN, 8472, 27634, {}, "cilium-vxlan"),
    (Tunnel.VXLAN, 4789, 4096, {}, "calico-vxlan"),
    (Tunnel.GENEVE, 6081, 52311, {"iface": "cilium_geneve"}, "cilium-geneve"),
    (Tunnel.GENEVE, 6081, 0, {"inner_eth_dst": mac_value("aa:bb:cc:dd:ee:ff")}, "antrea-geneve"),
    (Tunnel.IPIP, None, None, {}, "calico-ipip"),
    (Tunnel.FLANNEL_UDP, 8285, None, {}, "flannel-udp"),
])
def test_tunnel_envelopes(kind: Tunnel, port: int | None, vni: int | None, extra: dict, expected: str) -> None:
    table = table_of(_tunnelled(kind, port, vni, **extra))
    verdict = infer(table, journeys_of(table))
    assert verdict.name == expected, verdict.candidates[:3]


def test_geneve_alone_does_not_separate_cilium_from_antrea() -> None:
    table = table_of(_tunnelled(Tunnel.GENEVE, 6081, 52311))
    verdict = infer(table, journeys_of(table))
    assert {verdict.name, verdict.runner_up} == {"cilium-geneve", "antrea-geneve"}


def test_ipip_next_to_kube_bridge_is_kube_router() -> None:
    rows = _tunnelled(Tunnel.IPIP, None, None, iface="tun-3f9c2d1a7b0")
    rows += [{**r, "tunnel": 0, "iface": "kube-bridge", "ts": r["ts"] + 1000} for r in _tunnelled(Tunnel.IPIP, None, None)]
    table = table_of(rows)
    assert infer(table, journeys_of(table)).name == "kube-router"


def test_calico_proxy_arp_for_the_link_local_gateway() -> None:
    pod = mac_value("5a:0c:11:22:33:44")
    rows = [
        {"ts": 0, "ethertype": 0x0806, "eth_src": pod, "eth_dst": mac_value("ff:ff:ff:ff:ff:ff"), "arp_op": 1,
         "arp_sha": pod, "arp_spa": ip4_value("10.1.2.3"), "arp_tpa": ip4_value("169.254.1.1")},
    ]
    table = table_of(rows)
    verdict = infer(table, journeys_of(table))
    assert MODELS[verdict.name].family == "calico"
    assert any("169.254.1.1" in line for line in verdict.evidence)


def test_weave_mss_and_range_without_interface_names() -> None:
    syn_ack = {"ip_version": 4, "proto": 6, "tcp_flags": 0x12, "seq": 5, "ack": 9, "mss": 1336,
               "src": ip4_value("10.40.0.7"), "dst": ip4_value("10.44.0.2"), "sport": 80, "dport": 41000, "ttl": 64}
    rows = [{**syn_ack, "ts": 0, "tunnel": int(Tunnel.VXLAN), "outer_dport": 6784, "vni": 8421378,
             "outer_src": ip4_value("192.0.2.1"), "outer_dst": ip4_value("192.0.2.2")}]
    table = table_of(rows)
    verdict = infer(table, journeys_of(table))
    assert verdict.name == "weave", verdict.candidates[:3]


def test_a_ttl_cut_before_the_tunnel_device_speaks_for_models_whose_datapath_decrements_it() -> None:
    """Antrea forwards in OVS, not the IP stack, yet its L3DecTTL table decrements the TTL: a cut TTL fits it, a kept
    one does not (weave's OVS bridges the packet and keeps it)."""
    models = list(MODELS.values())
    [cut] = ttl_at_tunnel(SimpleNamespace(ttl_at_tunnel={("antrea-tun0", 63): 10}), models, None)  # type: ignore[arg-type]
    [kept] = ttl_at_tunnel(SimpleNamespace(ttl_at_tunnel={("antrea-tun0", 64): 10}), models, None)  # type: ignore[arg-type]
    assert cut.scores["antrea-geneve"] > 0 > cut.scores["weave"]
    assert kept.scores["antrea-geneve"] < 0 < kept.scores["weave"]


def test_antrea_leaves_nodeports_to_kube_proxy() -> None:
    """AntreaProxy translates a pod's ClusterIP traffic in OVS; a NodePort (proxyAll off, the default) is kube-proxy's."""
    from cniscope.analyze import analyze
    from cniscope.sources import InputSpec
    from tests.paths import DATA

    recorded = DATA / "scenarios" / "antrea-geneve"
    proxies = {s: analyze([InputSpec(str(recorded / s))]).model.service_proxy for s in ("cluster-ip", "node-port")}
    assert proxies == {"cluster-ip": "antrea-proxy", "node-port": "kube-proxy-iptables"}


def test_tunnels_seen_as_often_are_told_in_the_order_of_their_kind_and_port() -> None:
    """Envelopes are grouped by kind and port in no order: ties in count were said in any order, run to run."""
    from cniscope.models.evidence import gather

    table = table_of([{"tunnel": int(kind), "outer_dport": port, "vni": 1}
                      for kind, port in ((Tunnel.GENEVE, 6081), (Tunnel.VXLAN, 8472), (Tunnel.VXLAN, 4789),
                                         (Tunnel.VXLAN, 8472), (Tunnel.FLANNEL_UDP, 8285))])
    for _ in range(20):
        seen = [(t.kind, t.port, t.rows) for t in gather(table, [], list(MODELS.values()), None).tunnels]
        assert seen == [(Tunnel.VXLAN, 8472, 2), (Tunnel.VXLAN, 4789, 1), (Tunnel.GENEVE, 6081, 1),
                        (Tunnel.FLANNEL_UDP, 8285, 1)]


def test_interface_sightings_count_each_name_over_every_chunk() -> None:
    """Counted over the category codes chunk by chunk: as grouping the names counts them; none without names."""
    import polars as pl

    from cniscope.models.evidence import interface_sightings

    named = load_capture(CORPUS / "12-fluxop-flannel-any-inout-dns.txt").table
    unnamed = load_capture(SEED).table
    assert unnamed["iface"].null_count() == unnamed.height and interface_sightings(unnamed) == {}
    table = pl.concat([named, unnamed, named], rechunk=False)  # chunks, and nulls among them
    assert table["iface"].n_chunks() == 3
    grouped = dict(table.filter(pl.col("iface").is_not_null()).group_by("iface").len().rows())
    assert interface_sightings(table) == {name: 2 * n for name, n in interface_sightings(named).items()} == grouped
    assert {"cni0", "flannel.1"} <= set(grouped)

"""Service proxies: who turns a service address into a pod address, and what that leaves in a capture.

Sources: kubernetes pkg/proxy/ipvs/README.md (kube-ipvs0 dummy, Masq
forwarding), pkg/proxy/iptables (KUBE-SERVICES, KUBE-SEP DNAT, KUBE-MARK-MASQ
0x4000), pkg/proxy/nftables, kube-router docs (IPVS, VIPs on kube-dummy-if,
DSR with IPIP into the pod), cilium kube-proxy replacement docs (socket-level
load balancing: a pod's connect() already goes to the backend).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceProxy:
    """A service proxy; the comment above each entry says where its DNAT shows in a capture."""

    name: str
    summary: str
    dummy_iface: str  # device holding the service VIPs, "" when none
    node_ports: str = ""  # the proxy that translates NodePorts when this one leaves them to another ("": itself)


PROXIES: dict[str, ServiceProxy] = {
    p.name: p
    for p in (
        # the pod's veth shows ClusterIP:port, every later hop the endpoint; NodePort traffic is masqueraded (mark 0x4000)
        ServiceProxy("kube-proxy-iptables", "kube-proxy, iptables mode (the default): KUBE-SERVICES -> KUBE-SVC -> KUBE-SEP DNAT", ""),
        # as iptables mode; every ClusterIP is a /32 on the DOWN dummy kube-ipvs0
        ServiceProxy("kube-proxy-ipvs", "kube-proxy, IPVS mode: virtual servers in Masq (NAT) mode, ipsets for SNAT", "kube-ipvs0"),
        ServiceProxy("kube-proxy-nftables", "kube-proxy, nftables mode: one nft table doing the same DNAT", ""),  # as iptables mode
        # DNAT as kube-proxy IPVS; with DSR the request reaches the pod IPIP-encapsulated and the reply comes from the VIP;
        # the source IP is kept unless --masquerade-all
        ServiceProxy("kube-router-ipvs", "kube-router's IPVS proxy; VIPs on kube-dummy-if; optional DSR", "kube-dummy-if"),
        # a pod's own traffic is translated before the first packet: the service address never appears
        ServiceProxy("cilium-kpr", "Cilium kube-proxy replacement: eBPF at the socket (connect) and at the devices", ""),
        # the DNAT happens inside OVS: the pod's port shows the ClusterIP, the tunnel the endpoint; NodePorts stay with
        # kube-proxy's iptables rules unless proxyAll is on (its default is off), entering through antrea-gw0
        ServiceProxy("antrea-proxy", "AntreaProxy: service load balancing in OVS flows", "", node_ports="kube-proxy-iptables"),
    )
}

"""Antrea's OpenFlow pipeline on a node's br-int, cut to what the lab's traffic crosses.

Tables in Antrea's order (pkg/agent/openflow: Classifier, UnSNAT, Conntrack,
ServiceLB/EndpointDNAT, L3Forwarding, SNAT, L3DecTTL, L2ForwardingCalc),
numbered 0-7 here. Port 1 is the Geneve tunnel antrea-tun0 (flow-based
remote_ip), port 2 the gateway antrea-gw0, pods from 3 on.

- Classifier marks where a packet came from (reg0[0..3]: 1 tunnel, 2 gateway,
  3 pod) and checks a pod's MAC and IP (SpoofGuard); ARP goes to NORMAL.
- AntreaProxy: a pod's packet to a ClusterIP is DNATed in OVS conntrack (zone
  65520) before routing, so the service address shows only at the pod's port;
  a pod reaching itself through its Service is SNATed to 169.254.0.253 (zone
  65521). kube-proxy's iptables rules stay for the node's own traffic and
  NodePorts (AntreaProxy's default, proxyAll off), which enter through
  antrea-gw0.
- L3Forwarding: to a local pod, rewrite the MACs (gateway -> pod); to another
  node's pod CIDR, source MAC the gateway's, destination the global virtual
  MAC aa:bb:cc:dd:ee:ff, tunnel destination that node's IP; L3DecTTL
  decrements the TTL except for packets the node's stack already routed.
- L2ForwardingCalc outputs by destination MAC (back out of the same port for
  a hairpin).
"""

from __future__ import annotations

from cniscope.lab.naming import lab_mac
from cniscope.lab.spec import LabSpec, Node

VIRTUAL_MAC = "aa:bb:cc:dd:ee:ff"  # GlobalVirtualMAC
HAIRPIN_IP = "169.254.0.253"  # ServiceHairpinVirtualIP
CT_ZONE, SNAT_ZONE = 65520, 65521
TUNNEL_PORT, GATEWAY_PORT, FIRST_POD_PORT = 1, 2, 3
FROM_TUNNEL, FROM_GATEWAY, FROM_POD = 1, 2, 3
CLASSIFIER, UNSNAT, CONNTRACK, SERVICE_LB, L3_FORWARDING, SNAT, L3_DEC_TTL, L2_FORWARDING = range(8)
MTU = 1450  # pods and antrea-gw0: 1500 less the Geneve envelope


def gateway_mac(node: Node) -> str:
    return lab_mac(node.gateway)


def pod_mac(ip: str) -> str:
    return lab_mac(ip)


def uplink_mac(node: Node) -> str:
    return lab_mac(node.ip, "02:b0")


def pod_ports(spec: LabSpec, node: Node) -> dict[str, int]:
    """OpenFlow port of each pod of the node, by pod name."""
    return {pod.name: FIRST_POD_PORT + i for i, pod in enumerate(spec.pods_on(node.name))}


def flows(spec: LabSpec, node: Node) -> list[str]:
    gw_mac, gw_ip = gateway_mac(node), node.gateway
    ports = pod_ports(spec, node)
    pods = [(ports[p.name], p.ip, pod_mac(p.ip)) for p in spec.pods_on(node.name)]

    def t(table: int, priority: int, match: str, actions: str) -> str:
        return f"table={table},priority={priority}{',' + match if match else ''} actions={actions}"

    out = [
        t(CLASSIFIER, 200, f"in_port={TUNNEL_PORT}", f"load:{FROM_TUNNEL}->NXM_NX_REG0[0..3],goto_table:{UNSNAT}"),
        t(CLASSIFIER, 200, f"in_port={GATEWAY_PORT}", f"load:{FROM_GATEWAY}->NXM_NX_REG0[0..3],goto_table:{UNSNAT}"),
        t(CLASSIFIER, 190, f"in_port={GATEWAY_PORT},arp", "NORMAL"),
    ]
    for port, ip, mac in pods:
        out += [
            t(CLASSIFIER, 190, f"in_port={port},ip,dl_src={mac},nw_src={ip}", f"load:{FROM_POD}->NXM_NX_REG0[0..3],goto_table:{UNSNAT}"),
            t(CLASSIFIER, 190, f"in_port={port},arp,arp_spa={ip},arp_sha={mac}", "NORMAL"),
        ]
    out += [
        t(CLASSIFIER, 0, "", "drop"),
        t(UNSNAT, 200, f"ip,nw_dst={HAIRPIN_IP}", f"ct(table={CONNTRACK},zone={SNAT_ZONE},nat)"),
        t(UNSNAT, 0, "", f"goto_table:{CONNTRACK}"),
        t(CONNTRACK, 200, "ip", f"ct(table={SERVICE_LB},zone={CT_ZONE},nat)"),
        t(CONNTRACK, 0, "", f"goto_table:{SERVICE_LB}"),
    ]
    for group, svc in enumerate(spec.services, start=1):
        out.append(t(SERVICE_LB, 200, f"ct_state=+new+trk,tcp,nw_dst={svc.cluster_ip},tp_dst={svc.port}", f"group:{group}"))
    out += [
        t(SERVICE_LB, 0, "", f"goto_table:{L3_FORWARDING}"),
        t(L3_FORWARDING, 210, f"ip,dl_dst={gw_mac},nw_dst={gw_ip}", f"goto_table:{L2_FORWARDING}"),
        t(L3_FORWARDING, 210, f"ip,dl_dst={VIRTUAL_MAC},nw_dst={gw_ip}", f"mod_dl_dst:{gw_mac},goto_table:{L2_FORWARDING}"),
    ]
    for _port, ip, mac in pods:
        rewrite = f"mod_dl_src:{gw_mac},mod_dl_dst:{mac}"
        out += [
            t(L3_FORWARDING, 220, f"ip,nw_src={ip},nw_dst={ip}", f"{rewrite},goto_table:{SNAT}"),
            t(L3_FORWARDING, 200, f"ip,dl_dst={VIRTUAL_MAC},nw_dst={ip}", f"{rewrite},goto_table:{L3_DEC_TTL}"),
            t(L3_FORWARDING, 200, f"ip,dl_dst={gw_mac},nw_dst={ip}", f"{rewrite},goto_table:{L3_DEC_TTL}"),
        ]
    for other in spec.nodes:
        if other != node:
            out.append(t(L3_FORWARDING, 200, f"ip,nw_dst={other.pod_cidr}",
                         f"mod_dl_src:{gw_mac},mod_dl_dst:{VIRTUAL_MAC},set_field:{other.ip}->tun_dst,goto_table:{L3_DEC_TTL}"))
    out += [
        t(L3_FORWARDING, 0, "", f"goto_table:{L2_FORWARDING}"),
        t(SNAT, 200, "ip", f"ct(commit,table={L3_DEC_TTL},zone={SNAT_ZONE},nat(src={HAIRPIN_IP}))"),
        t(L3_DEC_TTL, 210, f"ip,reg0={FROM_GATEWAY}/0xf", f"goto_table:{L2_FORWARDING}"),
        t(L3_DEC_TTL, 200, "ip", f"dec_ttl,goto_table:{L2_FORWARDING}"),
        t(L3_DEC_TTL, 0, "", f"goto_table:{L2_FORWARDING}"),
    ]
    for port, _ip, mac in pods:
        out += [
            t(L2_FORWARDING, 210, f"in_port={port},dl_dst={mac}", "IN_PORT"),
            t(L2_FORWARDING, 200, f"dl_dst={mac}", f"output:{port}"),
        ]
    out += [
        t(L2_FORWARDING, 200, f"dl_dst={gw_mac}", f"output:{GATEWAY_PORT}"),
        t(L2_FORWARDING, 200, f"dl_dst={VIRTUAL_MAC}", f"output:{TUNNEL_PORT}"),
        t(L2_FORWARDING, 0, "", "drop"),
    ]
    return out


def groups(spec: LabSpec) -> list[str]:
    """One select group per Service: a bucket per endpoint, each committing the DNAT (EndpointDNAT)."""
    out = []
    for group, svc in enumerate(spec.services, start=1):
        buckets = []
        for name in svc.pods:
            pod = spec.pod(name)
            assert pod is not None  # validate() checked the reference
            buckets.append(f"bucket=actions=ct(commit,table={L3_FORWARDING},zone={CT_ZONE},nat(dst={pod.ip}:{svc.target_port}))")
        out.append(f"group_id={group},type=select," + ",".join(buckets))
    return out

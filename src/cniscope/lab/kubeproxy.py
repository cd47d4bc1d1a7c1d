"""kube-proxy in iptables mode: the nat table it writes, as an iptables-restore payload.

Chains and marks as kube-proxy (pkg/proxy/iptables) writes them:
KUBE-SERVICES (jumped to from PREROUTING and OUTPUT) -> KUBE-SVC-<hash> ->
KUBE-SEP-<hash> DNAT; KUBE-NODEPORTS (last rule of KUBE-SERVICES, local
destinations only); KUBE-MARK-MASQ sets 0x4000; KUBE-POSTROUTING masquerades
marked packets.
"""

from __future__ import annotations

import base64
import hashlib

from cniscope.lab.spec import CLUSTER_CIDR, LabSpec, Service


def chain_hash(prefix: str, *parts: str) -> str:
    """kube-proxy's chain names: prefix + first 16 base32 chars of sha256(parts)."""
    digest = hashlib.sha256("".join(parts).encode()).digest()
    return prefix + base64.b32encode(digest).decode()[:16]


def nat_payload(spec: LabSpec) -> str:
    chains = ["KUBE-SERVICES", "KUBE-POSTROUTING", "KUBE-MARK-MASQ", "KUBE-NODEPORTS"]
    rules = [
        '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000",
        '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
        "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000",
    ]
    for svc in spec.services:
        chains_svc, rules_svc = _service_rules(spec, svc)
        chains += chains_svc
        rules += rules_svc
    rules.append(
        '-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain"'
        " -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"
    )
    return "*nat\n" + "".join(f":{c} - [0:0]\n" for c in chains) + "\n".join(rules) + "\nCOMMIT\n"


def _service_rules(spec: LabSpec, svc: Service) -> tuple[list[str], list[str]]:
    name = f"default/{svc.name}"
    svc_chain = chain_hash("KUBE-SVC-", name, "tcp")
    chains = [svc_chain]
    rules = [
        f'-A KUBE-SERVICES -d {svc.cluster_ip}/32 -p tcp -m comment --comment "{name} cluster IP" -m tcp --dport {svc.port} -j {svc_chain}',
        f'-A {svc_chain} ! -s {CLUSTER_CIDR} -d {svc.cluster_ip}/32 -p tcp -m comment --comment "{name} cluster IP" -m tcp --dport {svc.port} -j KUBE-MARK-MASQ',
    ]
    if svc.node_port is not None:
        rules += [
            f'-A KUBE-NODEPORTS -p tcp -m comment --comment "{name}" -m tcp --dport {svc.node_port} -j KUBE-MARK-MASQ',
            f'-A KUBE-NODEPORTS -p tcp -m comment --comment "{name}" -m tcp --dport {svc.node_port} -j {svc_chain}',
        ]
    count = len(svc.pods)
    for index, pod_name in enumerate(svc.pods):
        pod = spec.pod(pod_name)
        assert pod is not None  # validate() checked the reference
        sep = chain_hash("KUBE-SEP-", name, "tcp", pod.ip)
        chains.append(sep)
        remaining = count - index
        pick = "" if remaining == 1 else f" -m statistic --mode random --probability {1 / remaining:.11f}"
        rules += [
            f'-A {svc_chain} -m comment --comment "{name}"{pick} -j {sep}',
            f'-A {sep} -s {pod.ip}/32 -m comment --comment "{name}" -j KUBE-MARK-MASQ',
            f'-A {sep} -p tcp -m comment --comment "{name}" -m tcp -j DNAT --to-destination {pod.ip}:{svc.target_port}',
        ]
    return chains, rules

"""Names a lab gives to what it creates: namespaces, interfaces, MACs, paths.

Only namespace names and files are global, so they carry the lab's prefix.
Interface names stay real (eth0, kube-bridge, veth<8 hex>, cali<11 hex>) and
are derived from the pod name, so identical labs get identical interfaces.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from pathlib import Path

from cniscope.errors import UsageError

NS_PREFIX = "cnl-"
LAB_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,30}$")  # no '/', no '..': a name never becomes another path
STATE_ROOT = Path(os.environ.get("CNISCOPE_LAB_ROOT", "/run/cniscope/labs"))
UNDERLAY = "underlay"


def ns_name(lab: str, member: str) -> str:
    """Namespace of a node, pod or the underlay: cnl-<lab>-<member>."""
    return f"{NS_PREFIX}{lab}-{member}"


def lab_prefix(lab: str) -> str:
    return f"{NS_PREFIX}{lab}-"


def check_name(lab: str) -> str:
    """A lab name as the user gave it, refused (exit 2) unless lower-case letters, digits and '-'."""
    if not LAB_NAME.match(lab):
        raise UsageError(f"{lab!r} is not a lab name: use lower-case letters, digits and '-', at most 31 characters")
    return lab


def state_dir(lab: str) -> Path:
    return STATE_ROOT / check_name(lab)


def veth_name(pod: str) -> str:
    """Host side of a pod's veth, as the CNI bridge plugin names it: veth + 8 hex."""
    return "veth" + hashlib.sha256(pod.encode()).hexdigest()[:8]


def cali_name(pod: str) -> str:
    """Calico's host-side name: cali + the first 11 hex of sha1(workload id)."""
    return "cali" + hashlib.sha1(pod.encode()).hexdigest()[:11]


def underlay_port(index: int) -> str:
    return f"port{index}"


def vtep_mac(node_ip: str, first_octets: str) -> str:
    """A stable locally administered MAC for a node's VXLAN device, from its IP."""
    octets = ipaddress.ip_address(node_ip).packed
    return first_octets + ":" + ":".join(f"{b:02x}" for b in octets)


def antrea_port(pod: str) -> str:
    """Antrea's host-side name: the pod name's first 8 characters, '-', 6 hex of sha1(container id) (here the pod name)."""
    return pod[:8].lstrip("-") + "-" + hashlib.sha1(pod.encode()).hexdigest()[:6]


def weave_port(pod: str) -> str:
    """Weave's CNI plugin names the host end vethwepl + the first characters of the container id (here a hash of the pod)."""
    return "vethwepl" + hashlib.sha1(pod.encode()).hexdigest()[:7]


def lab_mac(address: str, first_octets: str = "02:a0") -> str:
    """A stable locally administered MAC for an address the lab assigns (pods, gateways, uplink bridges)."""
    return vtep_mac(address, first_octets)

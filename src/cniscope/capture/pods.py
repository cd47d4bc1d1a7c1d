"""`--pod NS/NAME`: find the node a pod runs on, its IP and its eth0's peer (host-side) ifindex.

Through Kubernetes: `kubectl get pod` (node, IP) and `kubectl exec ... cat
/sys/class/net/eth0/iflink` (peer index; optional, the pod may lack `cat`).
In network namespaces (lab): the pod's namespace is PREFIX+NAME; its eth0's
`link_netnsid` names the node's namespace (`ip netns list-id`) and `link_index`
is the host-side ifindex there.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from cniscope import host
from cniscope.capture.transports import Kubectl
from cniscope.errors import EnvironmentProblem, InputError
from cniscope.host import Blame, Command, Done

LOOKUP_TIMEOUT_S = 60


@dataclass
class PodTarget:
    namespace: str
    name: str
    node: str
    ip: str | None = None
    peer_index: int | None = None
    host_index: int | None = None  # filled in once the node's interface table is known
    host_name: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _json(command: Command) -> Any:
    """What a lookup answered, as JSON. The pod or selector it asks about is the user's: a lookup that fails
    (no such pod, no such namespace) or does not answer is blamed on the user's input."""
    done = host.run(command, blame=Blame.INPUT, timeout=LOOKUP_TIMEOUT_S)
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise EnvironmentProblem(f"{command.purpose}: answer is not JSON ({exc.msg})") from exc


def _optional(command: Command) -> Done:
    return host.run(command, blame=Blame.INPUT, timeout=LOOKUP_TIMEOUT_S, check=False)


def from_kubernetes(kubectl: Kubectl, namespace: str, name: str) -> PodTarget:
    pod = _json(kubectl.pod_lookup(namespace, name))
    node = (pod.get("spec") or {}).get("nodeName")
    if not node:
        raise InputError(f"pod {namespace}/{name} is not scheduled on a node")
    target = PodTarget(namespace, name, node=node, ip=(pod.get("status") or {}).get("podIP"))
    done = _optional(kubectl.pod_peer_index(namespace, name))
    if done.returncode == 0 and done.stdout.strip().isdigit():
        target.peer_index = int(done.stdout.strip())
    return target


def select(kubectl: Kubectl, namespace: str, selector: str) -> list[tuple[str, str]]:
    """`--selector`: the pods a label selector picks, as (namespace, name)."""
    listing = _json(kubectl.pod_select(namespace, selector))
    items = listing.get("items") if isinstance(listing, dict) else None
    if not items:
        raise InputError(f"no pod in namespace {namespace} matches {selector!r}")
    return [(namespace, item["metadata"]["name"]) for item in items]


def from_netns(prefix: str, namespace: str, name: str) -> PodTarget:
    pod_ns = prefix + name
    links = _json(Command(("ip", "-n", pod_ns, "-j", "addr", "show", "dev", "eth0"), f"find eth0 of pod {pod_ns}"))
    if not links:
        raise InputError(f"pod {namespace}/{name}: namespace {pod_ns} has no eth0")
    eth0 = links[0]
    ids = _json(Command(("ip", "-n", pod_ns, "-j", "netns", "list-id"), f"list the namespace ids of pod {pod_ns}"))
    peer_ns = next((entry.get("name") for entry in ids if entry.get("nsid") == eth0.get("link_netnsid")), None)
    if not isinstance(peer_ns, str) or not peer_ns.startswith(prefix):
        raise InputError(f"pod {namespace}/{name}: the peer of eth0 in {pod_ns} is not in a node namespace under {prefix!r}")
    ip = next((a["local"] for a in eth0.get("addr_info", []) if a.get("family") == "inet"), None)
    return PodTarget(namespace, name, node=peer_ns[len(prefix) :], ip=ip, peer_index=eth0.get("link_index"))

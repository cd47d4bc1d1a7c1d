"""Expected paths shared by models of one data-plane shape, built from their device names.

Three shapes cover most models: a Linux bridge with veths (kube-router,
flannel), routed veths with no bridge (calico), and pods attached to a
switch that is not the kernel's IP stack (cilium's eBPF, antrea's OVS);
weave's L2 network bridged into OVS has its own paths (models/weave.py).
What `tcpdump -i any` shows on each node follows from the shape: a bridge
forwards frames between its ports without the bridge device seeing them, so
a packet between two pods of one bridge is seen twice (once per veth), while
a routed packet shows up on every device it crosses.
"""

from __future__ import annotations

from dataclasses import replace

from cniscope.models.base import Model, Path, Role, Side, Step, Traffic

SRC, DST = Side.SOURCE, Side.DESTINATION


def bridged(bridge: str, veth: str, tunnel: str = "", nic: str = "eth0", routed_in: bool = False) -> tuple[Path, ...]:
    """Pods on veths in a Linux bridge that the node routes for.

    `tunnel` names the VTEP when cross-node traffic is encapsulated; `routed_in`: other hosts route
    pod addresses to this node unencapsulated (BGP, host-gw), so packets from them arrive on the NIC.
    """
    out, into = _between_nodes(tunnel, nic)
    leave_pod = (Step(Role.HOST_VETH, "In", SRC, veth), Step(Role.POD_BRIDGE, "In", SRC, bridge))
    enter_pod = (Step(Role.POD_BRIDGE, "Out", DST, bridge), Step(Role.HOST_VETH, "Out", DST, veth))
    external = (Path(Traffic.EXTERNAL_TO_POD, (Step(Role.NIC, "In", DST, nic),) + enter_pod,
                     note="pod addresses routed to the node: from BGP peers, or host-gw routes on other nodes"),) if routed_in else ()
    return external + (
        Path(Traffic.POD_TO_POD_SAME_NODE, (Step(Role.HOST_VETH, "In", SRC, veth), Step(Role.HOST_VETH, "Out", DST, veth)),
             one_node=True, note="bridged between two ports: the bridge device does not see it"),
        Path(Traffic.POD_TO_POD_CROSS_NODE, leave_pod + out + into + enter_pod),
        Path(Traffic.POD_TO_SERVICE, (
            Step(Role.HOST_VETH, "In", SRC, veth, note="destination is the service address"),
            Step(Role.POD_BRIDGE, "In", SRC, bridge, nat="dnat", note="br_netfilter: already rewritten to the endpoint"),
        ) + out + into + enter_pod, note="endpoint on another node; an endpoint on the same bridge is reached like pod to pod, same node"),
        Path(Traffic.NODE_TO_POD, (Step(Role.POD_BRIDGE, "Out", DST, bridge), Step(Role.HOST_VETH, "Out", DST, veth)), one_node=True),
        Path(Traffic.EXTERNAL_TO_NODEPORT, (
            Step(Role.NIC, "In", DST, nic, note="to node:nodePort"),
            Step(Role.POD_BRIDGE, "Out", DST, bridge, nat="dnat+snat"),
            Step(Role.HOST_VETH, "Out", DST, veth, nat="dnat+snat"),
        ), note="endpoint on this node; masquerade unless externalTrafficPolicy: Local"),
        Path(Traffic.POD_TO_EXTERNAL, leave_pod + (Step(Role.NIC, "Out", SRC, nic, nat="snat"),)),
    )


def routed(veth: str, tunnel: str = "", nic: str = "eth0") -> tuple[Path, ...]:
    """Pods on veths the node routes to directly (/32 routes, proxy ARP): no bridge."""
    out, into = _between_nodes(tunnel, nic)
    leave = Step(Role.HOST_VETH, "In", SRC, veth)
    enter = Step(Role.HOST_VETH, "Out", DST, veth)
    return (
        Path(Traffic.POD_TO_POD_SAME_NODE, (leave, enter), one_node=True, note="routed by the node"),
        Path(Traffic.POD_TO_POD_CROSS_NODE, (leave,) + out + into + (enter,)),
        Path(Traffic.POD_TO_SERVICE, (Step(Role.HOST_VETH, "In", SRC, veth, note="destination is the service address"),)
             + tuple(Step(s.role, s.direction, s.side, s.iface, s.encapsulated, "dnat" if i == 0 else "", note=s.note) for i, s in enumerate(out))
             + into + (enter,), note="endpoint on another node"),
        Path(Traffic.NODE_TO_POD, (enter,), one_node=True),
        Path(Traffic.EXTERNAL_TO_POD, (Step(Role.NIC, "In", DST, nic), enter), note="pod addresses advertised by BGP"),
        Path(Traffic.EXTERNAL_TO_NODEPORT, (Step(Role.NIC, "In", DST, nic, note="to node:nodePort"),
                                            Step(Role.HOST_VETH, "Out", DST, veth, nat="dnat+snat"))),
        Path(Traffic.POD_TO_EXTERNAL, (leave, Step(Role.NIC, "Out", SRC, nic, nat="snat"))),
    )


def switched(port: str, tunnel: str, gateway: str, nic: str = "eth0", hidden_delivery: bool = False) -> tuple[Path, ...]:
    """Pods on ports of a switch outside the IP stack (eBPF programs, OVS) with a tunnel device between nodes.

    `hidden_delivery`: the last hop into the pod may skip the host veth's tap (eBPF redirect into the peer).
    """
    leave = Step(Role.HOST_VETH, "In", SRC, port)
    enter = Step(Role.HOST_VETH, "Out", DST, port, optional=hidden_delivery)
    out = (Step(Role.TUNNEL, "Out", SRC, tunnel), Step(Role.NIC, "Out", SRC, nic, encapsulated=True))
    into = (Step(Role.NIC, "In", DST, nic, encapsulated=True), Step(Role.TUNNEL, "In", DST, tunnel, note="decapsulated"))
    return (
        Path(Traffic.POD_TO_POD_SAME_NODE, (leave, enter), one_node=True, note="switched without the IP stack: TTL unchanged"),
        Path(Traffic.POD_TO_POD_CROSS_NODE, (leave,) + out + into + (enter,)),
        Path(Traffic.POD_TO_SERVICE, (Step(Role.HOST_VETH, "In", SRC, port, note="destination is the service address, translated right after this tap"),)
             + (replace(out[0], nat="dnat"), out[1]) + into + (enter,),
             note="endpoint on another node; cilium's socket load balancing translates before the first packet, so the service address may never show"),
        Path(Traffic.NODE_TO_POD, (Step(Role.GATEWAY, "Out", DST, gateway, optional=True), enter), one_node=True),
        Path(Traffic.EXTERNAL_TO_NODEPORT, (Step(Role.NIC, "In", DST, nic, note="to node:nodePort"),
                                            Step(Role.HOST_VETH, "Out", DST, port, nat="dnat+snat", optional=hidden_delivery))),
        Path(Traffic.POD_TO_EXTERNAL, (leave, Step(Role.NIC, "Out", SRC, nic, nat="snat"))),
    )


def _between_nodes(tunnel: str, nic: str) -> tuple[tuple[Step, ...], tuple[Step, ...]]:
    """How a packet leaves the sending node and enters the receiving one: by the NIC, encapsulated by
    `tunnel` when there is one."""
    if tunnel:
        return ((Step(Role.TUNNEL, "Out", SRC, tunnel), Step(Role.NIC, "Out", SRC, nic, encapsulated=True)),
                (Step(Role.NIC, "In", DST, nic, encapsulated=True), Step(Role.TUNNEL, "In", DST, tunnel, note="decapsulated")))
    return (Step(Role.NIC, "Out", SRC, nic),), (Step(Role.NIC, "In", DST, nic),)


def reply(steps: tuple[Step, ...]) -> tuple[Step, ...]:
    """The same points crossed the other way, as a reply takes them; NAT is undone between the same two points."""
    n = len(steps)
    flipped = {"In": "Out", "Out": "In"}
    out = []
    for j, step in enumerate(reversed(steps)):
        undone = steps[n - j].nat if 0 < j < n and n - j < n else ""
        out.append(replace(step, direction=flipped[step.direction], nat=undone,
                           side=SRC if step.side is DST else DST))
    return tuple(out)


def segments(model: Model) -> tuple[tuple[Path, tuple[Step, ...], bool], ...]:
    """Every per-node segment of every expected path, and of its reply: (path, steps, is_reply)."""
    found = _SEGMENTS.get(model.name)
    if found is None or found[0] is not model:
        found = _SEGMENTS[model.name] = (model, _build_segments(model.paths))
    return found[1]


_SEGMENTS: dict[str, tuple[Model, tuple[tuple[Path, tuple[Step, ...], bool], ...]]] = {}  # memo by name; rebuilt if another table of that name comes


def _build_segments(paths: tuple[Path, ...]) -> tuple[tuple[Path, tuple[Step, ...], bool], ...]:
    """Each segment and its reply; then, for segments with steps that may not show, the same without them
    (what a capture shows where they do not, e.g. a userspace datapath's missing tunnel device)."""
    out, shorter = [], []
    for path in paths:
        parts = [path.steps] if path.one_node else [path.segment(SRC), path.segment(DST)]
        for steps in parts:
            if steps:
                out.append((path, steps, False))
                out.append((path, reply(steps), True))
                kept = _shown(steps)
                if kept and kept != steps:
                    shorter.append((path, kept, False))
                    shorter.append((path, _shown(reply(steps)), True))
    return tuple(out + shorter)


def _shown(steps: tuple[Step, ...]) -> tuple[Step, ...]:
    """The steps that always show; NAT noted on a dropped step shows at the next one kept."""
    out, carried = [], ""
    for step in steps:
        if step.optional:
            carried = carried or step.nat
            continue
        out.append(replace(step, nat=step.nat or carried) if carried else step)
        carried = ""
    return tuple(out)

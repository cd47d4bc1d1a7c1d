"""Path findings: packets lost between two hops (`drop`) and replies that leave by another door (`asymmetric_path`)."""

from __future__ import annotations

from collections import defaultdict

from cniscope.findings import losses
from cniscope.findings.context import Context
from cniscope.findings.losses import Loss, Next
from cniscope.models import Role
from cniscope.results import Finding, FindingKind, Severity


def drops(ctx: Context) -> list[Finding]:
    """One finding per place and conversation where packets vanished, unless another finding already explains them."""
    groups: dict[tuple, list[Loss]] = defaultdict(list)
    for loss in ctx.losses:
        if loss.journey.id in ctx.claimed:
            continue
        groups[(*loss.place, loss.journey.flow)].append(loss)
    out = []
    for group in groups.values():
        first = group[0]
        hop = first.last
        flow = ctx.flow_by_id.get(first.journey.flow) if first.journey.flow is not None else None
        what = f"{flow.proto.upper()} {flow.client} <-> {flow.server}" if flow else first.journey.summary
        where = hop.point
        if first.peer is not None:
            title = f"{len(group)} packet(s) of {what} left {where} but never reached {first.peer}"
        else:
            title = f"{len(group)} packet(s) of {what} lost after {where}"
        severity, caveat = Severity.ERROR, ""
        filtered = first.expected is Next.ENCAPSULATED_NIC_OUT and _envelopes_filtered(ctx, first.node)
        if filtered:
            caveat = (" But packets also arrived on this node's tunnel device without their envelope being captured on "
                      "the NIC: the capture seems to leave envelopes out (a port filter excludes the tunnel's UDP), so "
                      "this needs a capture of the tunnel's port on the NIC to confirm.")
        if not _kind_ever_seen(ctx, first):
            caveat = caveat or (" No such sighting appears anywhere in this node's capture, though: if the capture had a "
                                "filter that left them out (a port filter excludes a tunnel's envelopes), this is not a drop.")
            severity = Severity.INFO if filtered else Severity.WARNING
        elif filtered:
            severity = Severity.WARNING
        examples = "; ".join(loss.journey.summary for loss in group[:3])
        ids = {loss.journey.id for loss in group}
        agree = next((f for f in ctx.model_findings if f.kind is FindingKind.DROP and set(f.journeys) & ids), None)
        if agree is not None:
            caveat += f" The model's expected path agrees ({agree.title})."
        ctx.claimed.update(ids)
        out.append(Finding(
            kind=FindingKind.DROP, severity=severity, title=title,
            explanation=f"Last seen at {where}; the capture covered the next place but never shows {first.expected.value}"
                        f" (e.g. {examples}).{caveat}",
            next_step=first.check,
            node=hop.node, iface=hop.iface,
            journeys=tuple(loss.journey.id for loss in group),
            flows=(flow.id,) if flow else (),
            rows=tuple(h.row for loss in group for h in loss.journey.hops),
        ))
    return out


def _envelopes_filtered(ctx: Context, node: str) -> bool:
    """Did packets arrive on the node's tunnel device with no envelope seen on the node before?"""
    for j in ctx.journeys:
        hops = [h for h in ctx.path(j) if ctx.node(h) == node]
        if hops and hops[0].direction in ("In", "P") and ctx.role(hops[0].iface) is Role.TUNNEL:
            return True
    return False


def _kind_ever_seen(ctx: Context, loss: Loss) -> bool:
    """Does the capture show, at any time, the kind of sighting that is missing here?"""
    if loss.expected is Next.PEER_NODE_IN:
        return loss.peer in ctx.coverage
    seen = ctx.seen_on(loss.node)
    if loss.expected is Next.ENCAPSULATED_NIC_OUT:
        return "tunnel" in seen
    if loss.expected is Next.BRIDGE_PORT_OUT:
        return Role.HOST_VETH in seen
    if loss.expected is Next.DECAPSULATED_IN:
        return Role.TUNNEL in seen
    return True


def asymmetric(ctx: Context) -> list[Finding]:
    """Per node and remote address: the NICs packets from it come in on vs. the NICs packets to it leave by.

    A node's ARP request for the address counts as leaving by that NIC: its route to the address points there.
    """
    ingress: dict[tuple[str, str], dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    egress: dict[tuple[str, str], dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for j in ctx.journeys:
        by_node: dict[str, list] = defaultdict(list)
        for hop in j.hops:
            by_node[ctx.node(hop)].append(hop)
        for node, hops in by_node.items():
            cov = ctx.coverage.get(node)
            if cov is None or not cov.every_iface:
                continue
            first, last = hops[0], hops[-1]
            if first.direction in losses.INGRESS and ctx.role(first.iface) is Role.NIC:
                tunnelled = bool(ctx.value(first, "tunnel"))
                remote = ctx.addr(first, "outer_src" if tunnelled else "src")
                if remote is not None and not ctx.is_local(node, remote):
                    ingress[(node, remote)][first.iface].append(j.id)  # type: ignore[index]
            if last.direction == "Out" and ctx.role(last.iface) is Role.NIC:
                if ctx.value(last, "arp_op") == 1:  # the node asks for the address on that link: its route points there
                    remote = ctx.addr(last, "arp_tpa")
                else:
                    remote = ctx.addr(last, "outer_dst" if ctx.value(last, "tunnel") else "dst")
                if remote is not None:
                    egress[(node, remote)][last.iface].append(j.id)  # type: ignore[index]
    lost_after = {loss.journey.id for loss in ctx.losses if loss.expected is Next.FORWARDED_OUT}
    out = []
    for (node, remote), ins in ingress.items():
        outs = egress.get((node, remote))
        if not outs or set(ins) & set(outs):
            continue
        in_names, out_names = sorted(ins), sorted(outs)
        in_journeys = [jid for ids in ins.values() for jid in ids]
        dropped = [jid for jid in in_journeys if jid in lost_after]
        explanation = (f"Packets from {remote} reach {node} on {', '.join(in_names)}, while packets to {remote} leave "
                       f"{node} by {', '.join(out_names)}: the node's route back to {remote} does not use the interface "
                       "its packets arrive on.")
        if dropped:
            explanation += (f" {len(dropped)} of the arriving packets were never forwarded: strict reverse-path filtering "
                            "(rp_filter=1) drops exactly those.")
        out.append(Finding(
            kind=FindingKind.ASYMMETRIC_PATH, severity=Severity.ERROR if dropped else Severity.WARNING,
            title=f"asymmetric path on {node}: from {remote} in by {', '.join(in_names)}, to it out by {', '.join(out_names)}",
            explanation=explanation,
            next_step=f"Check `ip route get {remote}` on {node} and net.ipv4.conf.{{all,{in_names[0]}}}.rp_filter "
                      "(1 = strict drops these packets; 2 = loose accepts them); fix the route or use loose mode.",
            node=node, iface=in_names[0],
            journeys=tuple(in_journeys) + tuple(jid for ids in outs.values() for jid in ids),
            rows=tuple(h.row for jid in in_journeys[:20] for h in ctx.by_id[jid].hops),
        ))
        ctx.claimed.update(dropped)
    return out

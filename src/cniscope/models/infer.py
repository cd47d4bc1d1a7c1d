"""Which network model a capture shows: every model scored against the evidence, with reasons.

Theory of operation
-------------------
`evidence.gather` counts what the capture shows. Each kind of evidence
(interface names, tunnel envelopes, signature MACs, gateway ARP, well-known
ports, BGP, pod MSS, TTL on tunnel devices, copies of a packet per node,
pod addresses reached from outside, the inventory) becomes one `Item`: a
sentence saying what was seen and a score per model, positive when the
model explains it, negative when the model would not produce it. A model's
total is the sum of its scores plus the log of its `prior` (how common that
variant is among clusters of its project: it only decides between variants
the capture cannot tell apart). Totals become probabilities by softmax; the
winner's probability is the confidence. The verdict is `unknown` when no
evidence was found at all or the best two are tied.

Scores are protocol facts, never file contents: flannel's VTEP is
flannel.1 and its VXLAN port 8472 with VNI 1, Calico's host veths carry
ee:ee:ee:ee:ee:ee, a bridge hides forwarded frames from its own tap, etc.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from cniscope.errors import CniscopeError, ExitCode
from cniscope.models import MODELS, PROXIES, UNKNOWN
from cniscope.models.base import Model
from cniscope.models.evidence import INITIAL_TTLS, Observations, Shape, TunnelSeen, any_rewrite, gather, nat_changes
from cniscope.models.shapes import segments
from cniscope.packets.schema import Tunnel, mac_text
from cniscope.results import ChangeKind, Journey, ModelVerdict

if TYPE_CHECKING:  # (imported with --cluster or an inventory beside the capture)
    from cniscope.inventory import Inventory

CLOSE = 0.33  # a runner-up with at least this fraction of the winner's probability is reported
MIN_CONFIDENCE = 0.2  # below this the winner is not named


class UnknownModel(CniscopeError):
    """`--model NAME` names no model."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class Item:
    """One piece of evidence: what was seen, and how well each model explains it."""

    text: str
    scores: dict[str, float]


def infer(table: pl.DataFrame, journeys: list[Journey], inventory: Inventory | None = None, force: str | None = None) -> ModelVerdict:
    """Score every model against the capture (and the inventory) and name the best, with the evidence."""
    if force is not None and force not in MODELS:
        raise UnknownModel(f"--model {force!r}: not a model; choose one of {', '.join(MODELS)}")
    models = list(MODELS.values())
    obs = gather(table, journeys, models, inventory)
    items = [item for rule in RULES for item in rule(obs, models, inventory)]
    totals = {m.name: sum(i.scores.get(m.name, 0.0) for i in items) + math.log(m.prior) for m in models}
    probs = _softmax(totals)
    ranked = sorted(probs.items(), key=lambda kv: kv[1], reverse=True)
    candidates = tuple((name, round(p, 3)) for name, p in ranked)
    proxy = _service_proxy(obs, journeys, force or ranked[0][0])

    if force is not None:
        against = tuple(f"{i.text} (against {force})" for i in items if i.scores.get(force, 0) < 0)
        return ModelVerdict(
            name=force, confidence=round(probs[force], 3), evidence=_lines(items, force, None) + against,
            runner_up=None, candidates=candidates, service_proxy=proxy[0], forced=True,
        )
    (best, p_best), (second, p_second) = ranked[0], ranked[1]
    if not any(s for i in items for s in i.scores.values()):
        return ModelVerdict(name=UNKNOWN, confidence=0.0, evidence=("nothing in the capture tells the network models apart",),
                            candidates=candidates, service_proxy=proxy[0])
    if p_best < MIN_CONFIDENCE or math.isclose(totals[best], totals[second]):
        lines = (f"the evidence does not separate {best} from {second}",) + _lines(items, best, second)
        return ModelVerdict(name=UNKNOWN, confidence=round(p_best, 3), evidence=lines, runner_up=best,
                            candidates=candidates, service_proxy=proxy[0])
    runner_up = second if p_second >= CLOSE * p_best else None
    lines = _lines(items, best, runner_up)
    if runner_up is not None and math.isclose(totals[best] - math.log(MODELS[best].prior), totals[second] - math.log(MODELS[second].prior)):
        lines += (f"{best} rather than {second}: nothing seen separates the two; {best} is the more common setup",)
    return ModelVerdict(name=best, confidence=round(p_best, 3), evidence=lines + proxy[1], runner_up=runner_up,
                        candidates=candidates, service_proxy=proxy[0])


def _softmax(totals: dict[str, float]) -> dict[str, float]:
    top = max(totals.values())
    weights = {k: math.exp(v - top) for k, v in totals.items()}
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items()}


def _lines(items: list[Item], best: str, runner_up: str | None) -> tuple[str, ...]:
    """Evidence for `best`, strongest first; then what speaks against the runner-up."""
    support = sorted((i for i in items if i.scores.get(best, 0) > 0), key=lambda i: -i.scores[best])
    lines = [i.text for i in support]
    if runner_up is not None:
        against = [i for i in items if i.scores.get(runner_up, 0) < i.scores.get(best, 0) and i not in support]
        lines += [f"{i.text} (against {runner_up})" for i in against]
    return tuple(lines[:12])


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _family_text(names: list[str]) -> str:
    return ", ".join(names) if len(names) <= 3 else f"{len(names)} models"


# ---- rules: each turns one kind of observation into evidence items ------------------------------------


Rule = Callable[[Observations, list[Model], "Inventory | None"], list[Item]]


def interfaces(obs: Observations, models: list[Model], inventory: Inventory | None) -> list[Item]:
    """A name only one model creates counts for it and against the rest; shared names count a little."""
    items = []
    for name, n in sorted(obs.ifaces.items()):
        claims = {m.name: p for m in models if (p := m.role_of(name)) is not None and p.weight > 0}
        if not claims:
            continue
        top = max(p.weight for p in claims.values())
        scores = {m.name: claims[m.name].weight if m.name in claims else (-min(3.0, top / 2) if top >= 3 else 0.0) for m in models}
        pattern = max(claims.values(), key=lambda p: p.weight)
        owners = _family_text(sorted(claims))
        items.append(Item(f"interface {name} ({_count(n, 'sighting')}): {pattern.note or pattern.role.value} ({owners})", scores))
    return items


def _within(net: ipaddress.IPv4Network | ipaddress.IPv6Network, block: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    """`net` inside `block`; False across IP versions (subnet_of raises there)."""
    if isinstance(net, ipaddress.IPv4Network) and isinstance(block, ipaddress.IPv4Network):
        return net.subnet_of(block)
    if isinstance(net, ipaddress.IPv6Network) and isinstance(block, ipaddress.IPv6Network):
        return net.subnet_of(block)
    return False


def _encap_score(model: Model, seen: TunnelSeen) -> float:
    best = -3.0 if not model.encaps else -2.5
    for encap in model.encaps:
        if encap.kind.value != seen.kind:
            continue
        port_ok = encap.port is None or encap.port == seen.port
        if encap.vni == "any":
            vni_ok = True
        elif encap.vni == "identity":
            vni_ok = any(v > 1 for v in seen.vnis) or not seen.vnis
        else:
            vni_ok = not seen.vnis or set(seen.vnis) == {int(encap.vni)}
        score = (4.0 if vni_ok else 1.0) if port_ok else 0.5
        if encap.vni == "identity" and port_ok and set(seen.vnis) == {1}:
            score = 1.5  # VNI 1 is Cilium's host identity: possible, but flannel's signature
        if not encap.usual:
            score = min(score, 1.5)
        best = max(best, score)
    return best


def tunnels(obs: Observations, models: list[Model], inventory: Inventory | None) -> list[Item]:
    items = []
    for seen in obs.tunnels:
        kind = Tunnel(seen.kind).label
        port = f" UDP port {seen.port}" if seen.port is not None else ""
        vnis = f", VNI {', '.join(map(str, seen.vnis[:5]))}{' ...' if len(seen.vnis) > 5 else ''}" if seen.vnis else ""
        items.append(Item(f"{_count(seen.rows, 'sighting')} encapsulated in {kind}{port}{vnis}", {m.name: _encap_score(m, seen) for m in models}))
    return items


def macs(obs: Observations, models: list[Model], inventory: Inventory | None) -> list[Item]:
    items = []
    for mac_value_, n in sorted(obs.macs.items()):
        text = mac_text(mac_value_)
        owners = {m.name: s for m in models for s in m.macs if not s.prefix and s.mac == text}
        weight = max(s.weight for s in owners.values())
        meaning = next(iter(owners.values())).meaning
        scores = {m.name: owners[m.name].weight if m.name in owners else -weight / 2 for m in models}
        items.append(Item(f"MAC {text} in {_count(n, 'frame')}: {meaning}", scores))
    for prefix, n in sorted(obs.mac_prefixes.items()):
        text = f"{prefix >> 8:02x}:{prefix & 255:02x}"
        owners = {m.name: s for m in models for s in m.macs if s.prefix and s.mac == text}
        meaning = next(iter(owners.values())).meaning
        items.append(Item(f"MACs starting {text} in {_count(n, 'frame')}: {meaning}", {m.name: owners[m.name].weight if m.name in owners else 0.0 for m in models}))
    return items


def gateway_arp(obs: Observations, models: list[Model], inventory: Inventory | None) -> list[Item]:
    return [
        Item(f"{n} ARP requests for {gw}: pods whose gateway is the link-local {gw}, answered by proxy ARP",
             {m.name: 5.0 if m.gateway_arp == gw else -2.5 for m in models})
        for gw, n in sorted(obs.gateway_arps.items())
    ]


def ports(obs: Observations, models: list[Model], inventory: Inventory | None) -> list[Item]:
    items = []
    for (proto, port), n in sorted(obs.ports.items()):
        owners = {m.name: p for m in models for p in m.ports if (p.proto, p.port) == (proto, port)}
        sig = next(iter(owners.values()))
        scores = {m.name: owners[m.name].weight if m.name in owners else -sig.weight / 3 for m in models}
        items.append(Item(f"{n} sightings on {'TCP' if proto == 6 else 'UDP'} port {port}: {sig.meaning}", scores))
    return items


def bgp(obs: Observations, models: list[Model], inventory: Inventory | None) -> list[Item]:
    if not obs.bgp_rows:
        return []
    return [Item(f"{obs.bgp_rows} BGP (TCP 179) sightings between nodes: the pod routes are exchanged by BGP",
                 {m.name: 2.0 * m.bgp - 1.0 for m in models})]


def mss(obs: Observations, models: list[Model], inventory: Inventory | None) -> list[Item]:
    items = []
    for value, n in sorted(obs.mss_from_pods.items()):
        mtu = value + 40
        fits = [m for m in models if mtu in m.pod_mtus]
        families = {m.family for m in fits}
        weight = 2.0 if len(families) == 1 else 1.0
        scores = {m.name: weight if m in fits else -0.5 for m in models}
        items.append(Item(f"pods announce MSS {value} ({_count(n, 'SYN sighting')}): pod MTU {mtu}", scores))
    return items


def ttl_at_tunnel(obs: Observations, models: list[Model], inventory: Inventory | None) -> list[Item]:
    items = []
    kept = sum(n for (_, ttl), n in obs.ttl_at_tunnel.items() if ttl in INITIAL_TTLS)
    cut = sum(n for (_, ttl), n in obs.ttl_at_tunnel.items() if ttl not in INITIAL_TTLS)
    if kept and not cut:
        items.append(Item(f"pod packets keep their initial TTL on the tunnel device ({kept} sightings): not forwarded by the node's IP stack",
                          {m.name: -0.5 if m.decrements_ttl else 1.5 for m in models}))
    if cut and not kept:
        items.append(Item(f"pod packets lose TTL before the tunnel device ({cut} sightings): routed by the node (its IP stack, or a datapath that decrements it)",
                          {m.name: 0.5 if m.decrements_ttl else -1.0 for m in models}))
    return items


def model_shapes(model: Model) -> set[Shape]:
    """The per-node shapes the model's expected paths produce (with and without their optional steps)."""
    shapes = set()
    for _, steps, _ in segments(model):
        for kept in (range(len(steps)), [i for i, s in enumerate(steps) if not s.optional]):
            if kept:  # NAT shows between the first and last copy seen, whichever step carries it
                between = steps[kept[0] + 1:kept[-1] + 1]
                shapes.add(Shape(len(kept), any(steps[i].encapsulated for i in kept), any(s.nat for s in between)))
    return shapes


def copies(obs: Observations, models: list[Model], inventory: Inventory | None) -> list[Item]:
    items = []
    for shape, n in sorted(obs.shapes.items(), key=lambda kv: (kv[0].copies, kv[0].encapsulated, kv[0].nat)):
        what = f"{shape.copies} copies of a packet on one node{', tunnelled' if shape.encapsulated else ''}{', rewritten by NAT between them' if shape.nat else ', unchanged'}"
        fits = [m.name for m in models if shape in model_shapes(m)]
        items.append(Item(f"{what} ({n} packets): the path of {_family_text(fits) if fits else 'no known model'}",
                          {m.name: 1.5 if m.name in fits else -1.5 for m in models}))
    return items


def pod_ranges(obs: Observations, models: list[Model], inventory: Inventory | None) -> list[Item]:
    cidrs = list(inventory.pod_cidrs()) if inventory is not None and inventory.pod_cidrs() else []
    # as integers (each address an object: 24 ms for 800 pods' addresses over the models' ranges)
    addresses = np.array(sorted(obs.pod_values), dtype=np.uint32)
    if not cidrs and not len(addresses):
        return []
    items = []
    scores = {}
    for m in models:
        defaults = [ipaddress.ip_network(c) for c in m.pod_cidrs]
        if cidrs:
            inside = all(any(_within(ipaddress.ip_network(c, strict=False), d) for d in defaults) for c in cidrs)
        else:
            within = np.zeros(len(addresses), dtype=bool)
            for d in defaults:
                if d.version == 4:
                    within |= addresses & np.uint32(int(d.netmask)) == np.uint32(int(d.network_address))
            inside = bool(within.all())
        narrow = all(d.prefixlen >= 12 for d in defaults)
        scores[m.name] = (1.5 if narrow else 0.3) if inside and defaults else 0.0
    if any(scores.values()):
        what = f"pod CIDRs {', '.join(cidrs)}" if cidrs else f"pod addresses ({', '.join(sorted(obs.pod_addresses)[:4])})"
        owners = [name for name, s in scores.items() if s > 0]
        items.append(Item(f"{what} inside the default pod range of {_family_text(owners)}", scores))
    return items


def routed_from_outside(obs: Observations, models: list[Model], inventory: Inventory | None) -> list[Item]:
    if not obs.direct_from_outside:
        return []
    client, pod = obs.direct_from_outside[0]
    return [Item(f"{client}, which is neither a node nor a pod of the inventory, reached pod {pod} without NAT or tunnel: "
                 "pod routes are advertised beyond the nodes (BGP)",
                 {m.name: 2.0 if m.routes_pods_beyond_nodes else -1.5 for m in models})]


def inventory_facts(obs: Observations, models: list[Model], inventory: Inventory | None) -> list[Item]:
    if inventory is None:
        return []
    items = []
    for family in sorted({m.family for m in models}):
        members = [m for m in models if m.family == family]
        agents = sorted({p.name for p in inventory.pods for m in members for rx in m.inventory_pods if re.fullmatch(rx, p.name)})
        if agents:
            items.append(Item(f"the inventory lists {family} agent pods ({', '.join(agents[:3])})",
                              {m.name: 4.0 if m.family == family else -2.0 for m in models}))
    notes = {k: v for node in inventory.nodes for k, v in node.annotations.items()}
    for m in models:
        for key, value in m.node_annotations:
            hits = {k: v for k, v in notes.items() if k.startswith(key)}
            if not hits:
                continue
            if value and all(v != value for v in hits.values()):
                items.append(Item(f"node annotation {key}={next(iter(hits.values()))}", {m.name: -3.0}))
                continue
            shown = f"{key}={value}" if value else f"{next(iter(hits))}"
            items.append(Item(f"node annotation {shown}", {x.name: (3.0 if x.name == m.name else (1.0 if x.family == m.family else -1.5)) for x in models}))
    return items


RULES: tuple[Rule, ...] = (
    interfaces, tunnels, macs, gateway_arp, ports, bgp, mss, ttl_at_tunnel, copies, pod_ranges, routed_from_outside, inventory_facts,
)


def _service_proxy(obs: Observations, journeys: list[Journey], model: str) -> tuple[str | None, tuple[str, ...]]:
    for proxy in PROXIES.values():
        if proxy.dummy_iface and proxy.dummy_iface in obs.ifaces:
            return proxy.name, (f"interface {proxy.dummy_iface}: {proxy.summary}",)
    # the first DNAT (most hops change nothing: no call for them; most captures rewrite nothing: no hop asked)
    nat = next((c for j in journeys for h in j.hops if h.changes for c in nat_changes(h) if c.kind is ChangeKind.DNAT), None) \
        if any_rewrite(journeys) else None
    if nat is None:
        return None, ()
    proxy = PROXIES[MODELS[model].service_proxy]
    if proxy.node_ports and _node_port(nat.before):
        proxy = PROXIES[proxy.node_ports]
        return proxy.name, (f"NodePort DNAT {nat.before} -> {nat.after}: {proxy.summary}, which {model} leaves NodePorts to",)
    return proxy.name, (f"service DNAT {nat.before} -> {nat.after}: {proxy.summary} is what {model} usually runs",)


NODE_PORTS = range(30000, 32768)  # kube-apiserver's --service-node-port-range by default


def _node_port(endpoint: str) -> bool:
    port = endpoint.rpartition(":")[2]
    return port.isdigit() and int(port) in NODE_PORTS

"""Network models as data: one module per project, an explicit table of every model, and the service proxies.

`MODELS` maps each name in `NAMES` (the names `cniscope analyze --json`
reports) to its `Model`. Inference (`cniscope.models.infer`), hop roles
(`cniscope.models.roles`) and the `cniscope models` pages read these tables.
"""

from __future__ import annotations

from cniscope.models.antrea import ANTREA_GENEVE
from cniscope.models.base import Model, Role, Traffic, role_of
from cniscope.models.calico import CALICO_BGP, CALICO_IPIP, CALICO_VXLAN
from cniscope.models.cilium import CILIUM_GENEVE, CILIUM_VXLAN
from cniscope.models.flannel import FLANNEL_HOST_GW, FLANNEL_UDP, FLANNEL_VXLAN
from cniscope.models.kube_router import KUBE_ROUTER
from cniscope.models.proxies import PROXIES, ServiceProxy
from cniscope.models.weave import WEAVE
from cniscope.packets.ports import TunnelPorts

MODELS: dict[str, Model] = {
    m.name: m
    for m in (
        KUBE_ROUTER,
        FLANNEL_VXLAN,
        FLANNEL_HOST_GW,
        FLANNEL_UDP,
        CALICO_BGP,
        CALICO_IPIP,
        CALICO_VXLAN,
        CILIUM_VXLAN,
        CILIUM_GENEVE,
        WEAVE,
        ANTREA_GENEVE,
    )
}
NAMES: tuple[str, ...] = tuple(MODELS)


def _tunnel_ports(models: list[Model]) -> TunnelPorts:
    ports = TunnelPorts()
    for model in models:
        for encap in model.encaps:
            if encap.port is not None:
                ports = ports.with_port(encap.port, encap.kind)
    return ports


# the UDP ports of every model's envelopes: what the decoders (binary and text) take for tunnels by default
TUNNEL_PORTS = _tunnel_ports(list(MODELS.values()))
UNKNOWN = "unknown"


def role_anywhere(model: Model | None, iface: str | None) -> Role | None:
    """What `iface` is for: by the model's patterns (and the names every node has), else by any model's (the names
    are distinctive); None for no name or `any`."""
    if iface is None or iface == "any":
        return None
    found = role_of(model, iface)
    if found is not None:
        return found.role
    for other in MODELS.values():
        pattern = other.role_of(iface)
        if pattern is not None:
            return pattern.role
    return None


__all__ = ["MODELS", "NAMES", "PROXIES", "TUNNEL_PORTS", "UNKNOWN", "Model", "Role", "ServiceProxy", "Traffic", "role_anywhere"]

"""UDP destination port -> tunnel kind: the one dispatch table for UDP encapsulations.

The decoders take it as an argument. The default is every network model's
envelope ports (`cniscope.models.TUNNEL_PORTS`, built with `with_port` from the
models' `Encap`s): calico's VXLAN on 4789 is there, an NGFW's VXLAN
redirection on 6080 is not until it is added:

    ports = TUNNEL_PORTS.with_port(6080, Tunnel.VXLAN)

The destination port is looked up first, then the source port (an NGFW's
redirection answers from 6080; the kernel's own VXLAN/Geneve source ports are
hashed into 32768-60999 and so never hit the table). Envelopes are IPv4 or
IPv6 (outer_src/outer_dst or outer_src6/outer_dst6). IP in IP is not a port
but IP protocol 4 or 41, always decoded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from cniscope.packets.kinds import Tunnel

UDP_TUNNELS = (Tunnel.VXLAN, Tunnel.GENEVE, Tunnel.FLANNEL_UDP)


@dataclass(frozen=True)
class TunnelPorts:
    by_port: Mapping[int, Tunnel] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for port, kind in self.by_port.items():
            if not 0 < port < 65536 or kind not in UDP_TUNNELS:
                raise ValueError(f"not a UDP tunnel port: {port} -> {kind!r}")
        object.__setattr__(self, "by_port", MappingProxyType(dict(self.by_port)))

    def with_port(self, port: int, kind: Tunnel) -> TunnelPorts:
        return TunnelPorts({**self.by_port, port: kind})

    def without_port(self, port: int) -> TunnelPorts:
        return TunnelPorts({p: k for p, k in self.by_port.items() if p != port})

    def kind(self, port: int) -> Tunnel:
        return self.by_port.get(port, Tunnel.NONE)

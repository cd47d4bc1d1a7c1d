"""BIRD 2 configuration for the BGP models (kube-router, calico-bgp).

Why BIRD and not gobgpd (what kube-router embeds): LAB-NOTES measured BIRD 2
with short timers converging in 1-4 s, gobgpd in 8-9 s plus a route installer
to write, and gobgpd sessions that collided and never converged in 2 of 18
starts. BIRD programs the kernel itself (proto bird routes); the wire shows
the same iBGP full mesh on TCP 179 and the same routed datapath.
"""

from __future__ import annotations

import ipaddress

AS_NUMBER = 64512
KERNEL_SCAN_SECONDS = 300  # long, so a deleted route (the missing-route fault) stays deleted during a test


def bird_config(router_id: str, peers: list[tuple[str, str]], exports: list[str], static_blackholes: list[str], log: str) -> str:
    """iBGP full mesh with short timers.

    `exports`: interfaces whose connected prefix is announced (kube-router's
    kube-bridge); `static_blackholes`: blocks announced and installed as
    blackholes (calico's per-node block). `peers`: (name, address). Of each
    pair, the node with the higher address connects and the other waits
    (passive), so the two never collide; the connecting side waits a second
    first (connect delay), by when every BIRD of the lab listens.
    """
    lines = [
        f'log "{log}" {{ warning, error, fatal }};',
        f"router id {router_id};",
        "protocol device { scan time 10; }",
    ]
    if exports:
        names = ", ".join(f'"{name}"' for name in exports)
        lines.append(f"protocol direct pods {{ ipv4; interface {names}; }}")
    if static_blackholes:
        routes = " ".join(f"route {block} blackhole;" for block in static_blackholes)
        lines.append(f"protocol static blocks {{ ipv4; {routes} }}")
    lines.append(f"protocol kernel {{ scan time {KERNEL_SCAN_SECONDS}; ipv4 {{ import none; export where source ~ [ RTS_BGP, RTS_STATIC ]; }}; }}")
    for name, address in peers:
        passive = " passive on;" if ipaddress.IPv4Address(address) > ipaddress.IPv4Address(router_id) else ""  # BGP router ids: IPv4
        lines.append(
            f"protocol bgp {name.replace('-', '_')} {{\n"
            f"  local as {AS_NUMBER}; neighbor {address} as {AS_NUMBER};\n"
            f"  direct;{passive}\n"
            "  connect delay time 1; connect retry time 1; error wait time 1, 4;\n"
            "  hold time 6; keepalive time 1;\n"
            "  ipv4 { gateway direct; import all; export where source ~ [ RTS_DEVICE, RTS_STATIC ]; next hop self; };\n"
            "}"
        )
    return "\n".join(lines) + "\n"

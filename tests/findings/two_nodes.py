"""Two kube-router-like nodes captured with `-i any`: the hops a packet crosses, and a whole HTTP exchange."""

from __future__ import annotations

from tests.findings.wire import ACK, IN, OUT, PSH, SYN, Wire, tcp

N1, N3 = "node1", "node3"
CLIENT, WEB = "10.244.1.11", "10.244.3.10"
V1, V3 = "veth1a2b3c4d", "veth9f8e7d6c"
OUT_OF_N1 = [(N1, V1, IN), (N1, "kube-bridge", IN), (N1, "eth0", OUT)]
INTO_N3 = [(N3, "eth0", IN), (N3, "kube-bridge", OUT), (N3, V3, OUT)]
OUT_OF_N3 = [(N3, V3, IN), (N3, "kube-bridge", IN), (N3, "eth0", OUT)]
INTO_N1 = [(N1, "eth0", IN), (N1, "kube-bridge", OUT), (N1, V1, OUT)]


def conversation(wire: Wire, start_us: float, sport: int = 40000) -> None:
    """A whole HTTP exchange client -> web across the nodes, every packet on every hop (sequence numbers differ per port)."""
    t, c, s = start_us, 1000 * sport, 7000 * sport + 13
    wire.path(tcp(CLIENT, sport, WEB, 80, SYN, c, ip_id=1, mss=1460), OUT_OF_N1 + INTO_N3, t)
    wire.path(tcp(WEB, 80, CLIENT, sport, SYN | ACK, s, c + 1, ip_id=0, mss=1460), OUT_OF_N3 + INTO_N1, t + 200)
    wire.path(tcp(CLIENT, sport, WEB, 80, ACK, c + 1, s + 1, ip_id=2), OUT_OF_N1 + INTO_N3, t + 400)
    wire.path(tcp(CLIENT, sport, WEB, 80, PSH | ACK, c + 1, s + 1, ip_id=3, length=80), OUT_OF_N1 + INTO_N3, t + 500)
    wire.path(tcp(WEB, 80, CLIENT, sport, ACK, s + 1, c + 81, ip_id=1), OUT_OF_N3 + INTO_N1, t + 700)

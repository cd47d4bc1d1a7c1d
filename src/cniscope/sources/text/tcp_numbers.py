"""TCP sequence numbers back to absolute, undoing tcpdump's relative numbering.

Without `-S`, tcpdump (print-tcp.c) keeps, per connection, the sequence
numbers of the first packet with ACK it printed (or of a SYN-ACK): that
packet is printed as is, and every later one relative to it: seq minus the
sender's first seq, ack minus the other side's (the first packet's ack - 1).
Each capture has its own first packet, so two nodes print one packet with
different numbers when their captures started at different points of a
long-lived connection (BGP, a watch on the API server). Journeys match
sightings across nodes on these numbers, so the reader undoes it: it keeps
the same table as tcpdump and adds the bases back.

What cannot be undone is not guessed: a number relative to a base tcpdump took
from a packet whose seq it did not print (a bare ACK) is left out (null), since
two nodes' captures print one packet with different such numbers. Text printed
with `-S` is already absolute: the base is then near the number itself, not
near zero, which tells the two apart packet by packet.
"""

from __future__ import annotations

WRAP = 1 << 32
ACK, SYN, FIN, RST = 16, 2, 1, 4

Endpoint = tuple[object, object]  # (address, port)


class TcpNumbers:
    """The bases of one tcpdump run (a text capture's segment): `absolute(row)` rewrites a row's seq/ack in place."""

    def __init__(self) -> None:
        self.bases: dict[tuple[Endpoint, Endpoint], int | None] = {}  # (from, to) -> first seq from `from`, None: not printed

    def absolute(self, row: dict[str, object]) -> None:
        flags = row.get("tcp_flags")
        if row.get("proto") != 6 or not isinstance(flags, int) or not flags & ACK:
            return  # tcpdump numbers relatively only packets with ACK
        src: Endpoint = (row.get("src") if row.get("src") is not None else row.get("src6"), row.get("sport"))
        dst: Endpoint = (row.get("dst") if row.get("dst") is not None else row.get("dst6"), row.get("dport"))
        seq, ack = row.get("seq"), row.get("ack")
        if (src, dst) not in self.bases or flags & SYN:  # tcpdump's first packet of the connection: printed as is
            self.bases[(src, dst)] = seq if isinstance(seq, int) else None
            self.bases[(dst, src)] = (ack - 1) % WRAP if isinstance(ack, int) else None
            return
        if isinstance(seq, int):
            row["seq"] = _absolute(seq, self.bases[(src, dst)])
        if isinstance(ack, int):
            row["ack"] = _absolute(ack, self.bases[(dst, src)])


def _absolute(printed: int, base: int | None) -> int | None:
    if base is None:
        return None
    if (printed - base) % WRAP < printed:
        return printed  # -S: the number is already absolute (near its base, not near zero)
    return (printed + base) % WRAP

"""flannel's UDP backend, as flanneld runs it: a TUN device and a user-space relay carrying IP packets in UDP.

    python -m cniscope.lab.relay --dev flannel0 --mtu 1472 --address 10.244.1.0/16 --listen 192.168.200.11 \\
        --peer 10.244.2.0/24=192.168.200.12 --pidfile relay.pid

It creates the TUN device (IFF_TUN, no packet information, so the device
carries bare IP packets), gives it the address and MTU flanneld gives
flannel0 (the node subnet's first address with the cluster network's prefix,
so the kernel routes every other node's pods into it), and then moves
packets: one read from the device goes to the node owning the destination's
subnet as one UDP datagram from and to port 8285; one datagram received goes
back into the device as it came. Bounded: one buffer of 64 KiB, one packet at
a time, nothing queued (a packet to no known subnet, or a datagram from no
known node, is dropped), and the process ends by itself after --lifetime
seconds. It goes to the background once the device is up and writes its pid
(what the lab's executor waits for); the lab kills it by that pid, and the
device disappears with it (it is not persistent).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import ipaddress
import os
import select
import socket
import struct
import time

from cniscope import host
from cniscope.host import Blame, Command

PORT = 8285  # flannel's UDP backend
TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
BUFFER = 65536


def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def relay(tun: int, sock: socket.socket, peers: dict[ipaddress.IPv4Network, str], deadline: float) -> None:
    nodes = set(peers.values())
    while (left := deadline - time.monotonic()) > 0:
        watched: list[int | socket.socket] = [tun, sock]
        ready, _, _ = select.select(watched, [], [], min(left, 60))
        if tun in ready:
            packet = os.read(tun, BUFFER)
            if len(packet) >= 20 and packet[0] >> 4 == 4:
                dst = ipaddress.IPv4Address(packet[16:20])
                node = next((ip for net, ip in peers.items() if dst in net), None)
                if node is not None:
                    with contextlib.suppress(OSError):  # no route or buffer full: dropped, as a UDP relay does
                        sock.sendto(packet, (node, PORT))
        if sock in ready:
            packet, (sender, _) = sock.recvfrom(BUFFER)
            if sender in nodes and len(packet) >= 20:
                with contextlib.suppress(OSError):  # not an IP packet the kernel takes: dropped
                    os.write(tun, packet)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dev", default="flannel0")
    parser.add_argument("--mtu", type=int, default=1472)
    parser.add_argument("--address", required=True, help="address/prefix of the device (subnet base / network prefix)")
    parser.add_argument("--listen", required=True, help="this node's address; datagrams go from and to its port 8285")
    parser.add_argument("--peer", action="append", default=[], help="SUBNET=NODE_IP, one per other node")
    parser.add_argument("--pidfile", required=True)
    parser.add_argument("--lifetime", type=float, default=24 * 3600, help="seconds before the relay ends by itself")
    args = parser.parse_args(argv)
    peers = {ipaddress.IPv4Network(subnet): node for subnet, _, node in (p.partition("=") for p in args.peer)}

    tun = open_tun(args.dev)
    for command in (["link", "set", args.dev, "mtu", str(args.mtu)], ["addr", "add", args.address, "dev", args.dev],
                    ["link", "set", args.dev, "up"]):
        host.run(Command(("ip", *command), f"set up {args.dev}"), blame=Blame.US)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((args.listen, PORT))

    if os.fork():  # the parent returns once the device is up; the child relays
        os._exit(0)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    with open(args.pidfile + ".tmp", "w") as out:
        out.write(f"{os.getpid()}\n")
    os.replace(args.pidfile + ".tmp", args.pidfile)
    relay(tun, sock, peers, time.monotonic() + args.lifetime)


if __name__ == "__main__":
    main()

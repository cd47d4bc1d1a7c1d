"""What runs on a node: constant shell scripts and tcpdump's argument list.

No user text is ever pasted into a script: scripts are constants, and what varies
(the filter, limits, a pid) is passed as separate arguments (`sh -c SCRIPT NAME
ARG...`), which the scripts use only as quoted "$@"/"$1".
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

# A plain user's PATH may lack the sbin directories where tcpdump and ip live on some systems.
SBIN_PATH = 'PATH="$PATH:/usr/sbin:/sbin"; export PATH; '
# One run prints everything we record about a node, in sections "== name".
INVENTORY_SCRIPT = SBIN_PATH + r"""
echo '== uid'; id -u
echo '== hostname'; cat /proc/sys/kernel/hostname
echo '== ssh'; echo "${SSH_CONNECTION:-}"
echo '== links'; ip -j -d addr show
echo '== routes'; ip -j route show table all
echo '== neigh'; ip -j neigh show
echo '== sysctl'; grep -Hs . /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv4/conf/*/rp_filter /proc/sys/net/ipv4/conf/*/proxy_arp /proc/sys/net/bridge/bridge-nf-call-iptables
echo '== tcpdump'; tcpdump --version 2>&1
echo '== ip'; ip -V 2>&1
echo '== uname'; uname -sr
echo '== clock'; date +%s%N
echo '== end'
""".strip()

# Report our pid (the one to signal), then become `timeout ... tcpdump ...`:
# timeout forwards SIGTERM to tcpdump and bounds it on the node even if the
# client vanishes.
START_SCRIPT = SBIN_PATH + 'echo "cniscope-pid $$" >&2; exec "$@"'
# The same where our standard input reaches the node (local, netns, ssh): tcpdump also stops when it closes,
# i.e. when cniscope dies or the connection is lost (a watcher reads it to its end), not only at the node's
# time limit. The shell outlives tcpdump to stop the watcher first: a pid is never signalled once reaped.
WATCHED_START_SCRIPT = SBIN_PATH + (
    'exec 3<&0; "$@" 3<&- & pid=$!; echo "cniscope-pid $pid" >&2; '
    '{ cat >/dev/null; kill -s TERM "$pid"; } <&3 >/dev/null 2>&1 & watcher=$!; exec 3<&-; '
    'wait "$pid"; status=$?; kill "$watcher" 2>/dev/null; exit "$status"'
)
STOP_SCRIPT = 'kill -s TERM "$1"'
PID_LINE = re.compile(r"^cniscope-pid (\d+)$")
LISTENING = re.compile(r"^tcpdump: listening on ")
KILL_GRACE_S = 5
V3_FLUSH_S = 1.3  # > tcpdump's 1000 ms block timeout
NODE_MARGIN_S = 30  # how long after the planned stop the node stops tcpdump by itself


@dataclass(frozen=True)
class TcpdumpSettings:
    """How tcpdump records. The defaults neither drop bursts nor lose packets at stop.

    Measured here (2 cores, loaded, 10,000 UDP packets in a burst): immediate mode
    makes libpcap use TPACKET_V2, whose ring has one fixed slot per snaplen, so
    `-s 65535 -B 32768` holds about 500 packets and dropped 500-1000 of them;
    without it (TPACKET_V3, packets packed into blocks) the same buffer dropped 0.
    V3 hands a block over when it is full or after tcpdump's 1 s timeout, so the
    runner waits `flush_s` after deciding to stop before it sends SIGTERM: nothing
    seen before the stop is lost (LAB-NOTES: stopping at once lost up to 1 s).
    """

    snaplen: int = 65535
    buffer_kib: int = 32768
    immediate: bool = False
    count: int | None = None

    @property
    def flush_s(self) -> float:
        return 0.0 if self.immediate else V3_FLUSH_S


def inventory_argv() -> list[str]:
    return ["sh", "-c", INVENTORY_SCRIPT, "cniscope-inventory"]


def tcpdump_argv(settings: TcpdumpSettings, bpf: str | None, limit_s: int, watch_stdin: bool = False) -> list[str]:
    """The node-side command: a pid line on stderr, then pcap (LINUX_SLL2, ns stamps) on stdout; with
    `watch_stdin`, tcpdump stops when standard input closes."""
    args = ["tcpdump", "-i", "any", "-n", "-s", str(settings.snaplen), "-B", str(settings.buffer_kib), "-Z", "root"]
    args += ["--time-stamp-precision", "nano", "-w", "-"]
    if settings.immediate:
        args.append("--immediate-mode")
    if settings.count is not None:
        args += ["-c", str(settings.count)]
    if bpf:
        args += ["--", bpf]
    timeout = ["timeout", "-s", "TERM", "-k", str(KILL_GRACE_S), str(limit_s)]
    return ["sh", "-c", WATCHED_START_SCRIPT if watch_stdin else START_SCRIPT, "cniscope-capture", *timeout, *args]


def stop_argv(pid: int | str) -> list[str]:
    return ["sh", "-c", STOP_SCRIPT, "cniscope-stop", str(pid)]


@dataclass(frozen=True)
class TcpdumpSummary:
    captured: int | None
    received: int | None
    dropped: int | None


SUMMARY = {
    "captured": re.compile(r"^(\d+) packets? captured$"),
    "received": re.compile(r"^(\d+) packets? received by filter$"),
    "dropped": re.compile(r"^(\d+) packets? dropped by kernel$"),
}


def parse_summary(stderr_lines: list[str]) -> TcpdumpSummary:
    """tcpdump's exit summary; a count is None when tcpdump did not print it (killed, failed)."""
    found: dict[str, int | None] = dict.fromkeys(SUMMARY)
    for line in stderr_lines:
        for key, pattern in SUMMARY.items():
            match = pattern.match(line.strip())
            if match:
                found[key] = int(match.group(1))
    return TcpdumpSummary(**found)


def ifindex_filter(indexes: list[int], bpf: str | None) -> str:
    """Restrict an `-i any` capture to some interfaces (libpcap >= 1.10 `ifindex`)."""
    only = " or ".join(f"ifindex {index}" for index in sorted(set(indexes)))
    return f"({only}) and ({bpf})" if bpf else f"({only})"


def exclude_ssh(bpf: str | None, ssh_connection: str | None) -> str | None:
    """Leave our own SSH traffic out (else every captured packet makes more to capture).

    `ssh_connection` is $SSH_CONNECTION as the node saw it: client address and
    port, server address and port. Every SSH connection from that client to that
    server port is left out (our stop commands open new ones).
    """
    if not ssh_connection:
        return bpf
    parts = ssh_connection.split()
    if len(parts) != 4 or not parts[3].isdigit():
        return bpf
    try:
        client, server = ipaddress.ip_address(parts[0]), ipaddress.ip_address(parts[2])
    except ValueError:
        return bpf
    own = f"not (tcp and host {client} and host {server} and port {int(parts[3])})"
    return f"({bpf}) and {own}" if bpf else own

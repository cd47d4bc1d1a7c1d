"""Open vSwitch on a lab node: a private ovsdb-server and ovs-vswitchd with the userspace (netdev) datapath.

This kernel has no OVS datapath module, so every node runs its own daemons
inside its namespace (`ip netns exec`), every file of theirs (database,
sockets, pid files, logs) in the node's folder of the lab's state, and every
command names that folder's sockets: nothing talks to the host's own Open
vSwitch (/var/run/openvswitch) or runs in the host's namespace. The daemons
die with the lab (they run inside its namespaces, see state.teardown).

What the userspace datapath changes, and how the lab makes it look like the
kernel datapath the models describe:
- Ports are read and written through AF_PACKET sockets, internal ports are
  tap devices. The kernel's own stack still sees frames arriving on a port,
  where the OVS kernel module would have taken them: ports get `arp off` so
  the node's stack never answers ARP on them, and frames addressed to the
  switch's MACs are "otherhost" to the port (tcpdump's `P`), which the stack
  drops.
- A pod's veth computes no checksums (tx offload off inside the pod): OVS
  reads the frame before the kernel would have completed it.
- Tunnels are built in user space. Open vSwitch's userspace tunnelling
  (Documentation/howto/userspace-tunneling) sends envelopes through the
  bridge that holds the underlay address: the node's address moves from eth0
  to the internal port of an uplink bridge `br-phy` that has eth0 as its
  port, so envelopes leave through eth0 and there is no kernel tunnel device
  (no genev_sys_6081 or vxlan_sys_* to capture on).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cniscope.host import Command
from cniscope.lab.steps import Daemon, File, Ip, Step, in_ns

SCHEMA = "/usr/share/openvswitch/vswitch.ovsschema"
# The datapath is a process: on a busy machine a packet it holds back 200 ms is, to TCP, a lost one (a
# retransmission in a clean capture). It runs ahead of ordinary work, as the kernel's datapath would.
PRIORITY = ("nice", "-n", "-10")
UPLINK = "br-phy"  # the uplink bridge holding the node's address (the name Open vSwitch's docs use)


@dataclass(frozen=True)
class Ovs:
    """One node's Open vSwitch: its namespace, its folder (db, sockets, pids, logs) and its name in daemon names."""

    ns: str
    dir: Path
    node: str

    def _env(self) -> tuple[str, ...]:
        """For the daemons: every default path they would use points into the node's folder."""
        return ("env", f"OVS_RUNDIR={self.dir}", f"OVS_LOGDIR={self.dir}", f"OVS_DBDIR={self.dir}")

    @property
    def db(self) -> str:
        return f"unix:{self.dir}/db.sock"

    def vsctl(self, *args: str) -> Command:
        return in_ns(self.ns, ("ovs-vsctl", f"--db={self.db}", "--timeout=10", *args), f"configure the Open vSwitch of {self.node}")

    def add(self, bridge: str, what: str, lines: list[str]) -> list[Step]:
        """`ovs-ofctl add-flows` or `add-groups` (what: "flows", "groups") from a file in the node's folder."""
        path = self.dir / f"{bridge}.{what}"
        return [
            File(str(path), "\n".join(lines) + "\n"),
            in_ns(self.ns, ("ovs-ofctl", "-O", "OpenFlow15", f"add-{what}", f"unix:{self.dir}/{bridge}.mgmt", str(path)),
                  f"add the {what} of {bridge} on {self.node}"),
        ]

    def appctl(self, *args: str) -> Command:
        return in_ns(self.ns, ("ovs-appctl", f"--target={self.dir}/ovs-vswitchd.ctl", "--timeout=10", *args),
                     f"ask the ovs-vswitchd of {self.node}")


def start(switches: list[Ovs]) -> list[Step]:
    """Create each node's database and start its two daemons, phase by phase across the nodes, so that the
    executor starts each phase's daemons together (each writes its pid file once it serves)."""
    common = ("--no-chdir", "--detach")
    steps: list[Step] = []
    for ovs in switches:
        steps += [
            File(str(ovs.dir / "README"), "Open vSwitch of this lab node: database, sockets, pid files, logs.\n"),
            in_ns(ovs.ns, ("ovsdb-tool", "create", str(ovs.dir / "conf.db"), SCHEMA), f"create the Open vSwitch database of {ovs.node}"),
        ]
    for ovs in switches:
        d = ovs.dir
        steps.append(Daemon(ovs.ns, f"ovsdb-server {ovs.node}",
                            (*ovs._env(), "ovsdb-server", str(d / "conf.db"), f"--remote=punix:{d}/db.sock",
                             f"--unixctl={d}/ovsdb-server.ctl", f"--pidfile={d}/ovsdb-server.pid",
                             f"--log-file={d}/ovsdb-server.log", *common), str(d / "ovsdb-server.pid")))
    steps += [ovs.vsctl("--no-wait", "init") for ovs in switches]
    for ovs in switches:
        d = ovs.dir
        steps.append(Daemon(ovs.ns, f"ovs-vswitchd {ovs.node}",
                            (*PRIORITY, *ovs._env(), "ovs-vswitchd", ovs.db, f"--unixctl={d}/ovs-vswitchd.ctl",
                             f"--pidfile={d}/ovs-vswitchd.pid", f"--log-file={d}/ovs-vswitchd.log", *common),
                            str(d / "ovs-vswitchd.pid")))
    return steps


def uplink(ovs: Ovs, address: str, gateway: str, mac: str) -> list[Step]:
    """Bridge br-phy with eth0 as its port; the node's address and default route on br-phy's internal port."""
    return [
        ovs.vsctl("add-br", UPLINK, "--", "set", "bridge", UPLINK, "datapath_type=netdev", f"other-config:hwaddr={mac}",
                  "--", "add-port", UPLINK, "eth0"),
        Ip(ovs.ns, ("link", "set", "eth0", "arp", "off")),
        Ip(ovs.ns, ("addr", "add", address, "dev", UPLINK)),
        Ip(ovs.ns, ("link", "set", UPLINK, "up")),
        Ip(ovs.ns, ("route", "add", "default", "via", gateway, "dev", UPLINK)),
    ]


def tunnel_neighbours(ovs: Ovs, peers: list[tuple[str, str]]) -> list[Step]:
    """The MAC of each remote node's br-phy, for the userspace tunnel (it would otherwise ARP and drop the first packet)."""
    return [ovs.appctl("tnl/neigh/set", UPLINK, address, mac) for address, mac in peers]

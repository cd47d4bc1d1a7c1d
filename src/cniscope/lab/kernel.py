"""What this machine can build: root, tools, and kernel features probed for real.

A feature is probed in a scratch namespace (`ip link add ... type ipip` fails
when the kernel lacks it), never assumed. Unbuildable models are refused with
the missing feature named (exit code 5, EnvironmentProblem).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

from cniscope import host
from cniscope.errors import EnvironmentProblem
from cniscope.host import Blame, Command
from cniscope.lab.naming import NS_PREFIX
from cniscope.lab.spec import model_info

TOOLS = ("ip", "bridge", "genl", "iptables-restore", "nginx", "bird", "conntrack", "curl", "tcpdump")
OVS_TOOLS = ("ethtool", "ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovs-appctl")


def require_root() -> None:
    if os.geteuid() != 0:
        raise EnvironmentProblem("the lab needs root (network namespaces, veths, iptables): run it as root")


def require_tools(tools: tuple[str, ...] = TOOLS) -> None:
    missing = [tool for tool in tools if shutil.which(tool) is None]
    if missing:
        raise EnvironmentProblem(f"the lab needs {', '.join(missing)}: install them (make install does)")


def _link_type(kind: str) -> Callable[[], bool]:
    def probe() -> bool:
        scratch = f"{NS_PREFIX}probe-{os.getpid()}"
        host.run(Command(("ip", "netns", "add", scratch), "create a scratch namespace to probe the kernel"), blame=Blame.US)
        try:
            return host.run(Command(("ip", "-n", scratch, "link", "add", "probe0", "type", kind), f"probe for {kind} devices"),
                            check=False).returncode == 0
        finally:
            host.run(Command(("ip", "netns", "del", scratch), "remove the scratch namespace"), check=False)

    return probe


def _genl_family(family: str) -> Callable[[], bool]:
    """A kernel subsystem that talks generic netlink is there when its family answers."""

    def probe() -> bool:
        return host.run(Command(("genl", "ctrl", "get", "name", family), f"probe for the {family} netlink family"),
                        check=False).returncode == 0

    return probe


def _tun() -> bool:
    return os.path.exists("/dev/net/tun")


def _ovs_userspace() -> bool:
    """Open vSwitch's userspace datapath: its programs, and tap devices for internal ports."""
    return _tun() and all(shutil.which(tool) for tool in OVS_TOOLS)


def _cilium_ebpf() -> bool:
    return False  # the eBPF datapath comes from the cilium agent's own programs, which the lab does not have


FEATURES: dict[str, tuple[Callable[[], bool], str]] = {
    "ipip": (_link_type("ipip"), "the kernel has no IPIP tunnels (ip link add type ipip fails)"),
    "geneve": (_link_type("geneve"), "the kernel has no Geneve tunnels (ip link add type geneve fails)"),
    "ipvs": (_genl_family("IPVS"), "the kernel has no IPVS (generic netlink family IPVS is missing)"),
    "openvswitch": (_genl_family("ovs_datapath"),
                    "the kernel has no Open vSwitch datapath, which weave fastdp and antrea need (genl family ovs_datapath)"),
    "tun": (_tun, "there is no /dev/net/tun (TUN devices)"),
    "ovs-userspace": (_ovs_userspace, "Open vSwitch's userspace datapath needs /dev/net/tun and "
                      + ", ".join(OVS_TOOLS) + " (Debian packages openvswitch-switch, ethtool; make install brings them)"),
    "cilium-ebpf": (_cilium_ebpf, "cilium's datapath is the cilium agent's eBPF programs, which the lab cannot run"),
}


def require_buildable(model: str) -> None:
    info = model_info(model)
    if info.needs is None:
        return
    require_root()  # the probes create a scratch namespace
    probe, why = FEATURES[info.needs]
    if not probe():
        raise EnvironmentProblem(f"cannot build {model} here: {why}")
    if not info.buildable:
        raise EnvironmentProblem(f"cannot build {model}: the kernel has {info.needs} but the lab has no builder for {model} yet")

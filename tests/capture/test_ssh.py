"""Acceptance: `cniscope capture --via ssh` against real sshd servers, one per node namespace.

Topology (all namespaces cst-cap-<pid>-<n>-*): an underlay bridge joining nodes
n1..n3 (192.168.77.1-3) and a client (192.168.77.100) from which cniscope runs;
pod p1 on n1 (10.244.1.2) and pod p3 on n3 (10.244.3.2, an HTTP server), routed
through the nodes. Host keys and the client key are made per test; each sshd
runs with -f a temp config and is killed by pid.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Capturing, Namespaces, cniscope, comm, needs_root, sh, tshark_names

SSH_TOOLS = ("ssh", "ssh-keygen", "/usr/sbin/sshd", "curl", "tshark")
needs_ssh = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in SSH_TOOLS), reason="needs OpenSSH client and server, curl and tshark"
)
NODES = {"n1": "192.168.77.1", "n2": "192.168.77.2", "n3": "192.168.77.3"}
SSHD_CONFIG = """\
ListenAddress {address}:22
HostKey {dir}/host_{node}
PidFile {dir}/sshd_{node}.pid
AuthorizedKeysFile {dir}/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
LogLevel ERROR
"""


def build_cluster(netns: Namespaces) -> None:
    netns.add("ul")
    netns.ip("ul", "link", "add", "br0", "type", "bridge")
    netns.ip("ul", "link", "set", "br0", "up")
    for index, (member, address) in enumerate({**NODES, "cl": "192.168.77.100"}.items()):
        netns.add(member)
        netns.veth(member, "eth0", "ul", f"port{index}")
        netns.ip("ul", "link", "set", f"port{index}", "master", "br0")
        netns.ip(member, "addr", "add", f"{address}/24", "dev", "eth0")
    for node, pod, octet in (("n1", "p1", 1), ("n3", "p3", 3)):
        netns.add(pod)
        netns.veth(node, f"veth{octet:08x}", pod, "eth0")
        netns.ip(node, "addr", "add", f"10.244.{octet}.1/24", "dev", f"veth{octet:08x}")
        netns.ip(pod, "addr", "add", f"10.244.{octet}.2/24", "dev", "eth0")
        netns.ip(pod, "route", "add", "default", "via", f"10.244.{octet}.1")
        netns.run(node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    netns.ip("n1", "route", "add", "10.244.3.0/24", "via", NODES["n3"])
    netns.ip("n3", "route", "add", "10.244.1.0/24", "via", NODES["n1"])


@pytest.fixture
def ssh_cluster(netns: Namespaces, tmp_path: Path) -> Iterator[tuple[Namespaces, Path]]:
    build_cluster(netns)
    keys = tmp_path / "keys"
    keys.mkdir()
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory (Debian)
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / "client"))
    (keys / "authorized_keys").write_text((keys / "client.pub").read_text())
    known = []
    servers: list[subprocess.Popen[bytes]] = []
    config = ["Host *", "  User root", f"  IdentityFile {keys / 'client'}", "  IdentitiesOnly yes",
              f"  UserKnownHostsFile {keys / 'known_hosts'}", "  GlobalKnownHostsFile /dev/null", "  StrictHostKeyChecking yes"]
    try:
        for node, address in NODES.items():
            sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / f"host_{node}"))
            known.append(f"{address} {(keys / f'host_{node}.pub').read_text().strip()}")
            (keys / f"sshd_{node}").write_text(SSHD_CONFIG.format(address=address, dir=keys, node=node))
            servers.append(subprocess.Popen(
                ["ip", "netns", "exec", netns.prefix + node, "/usr/sbin/sshd", "-D", "-e", "-f", str(keys / f"sshd_{node}")],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            ))
            config = [f"Host {node}", f"  HostName {address}", *config]
        (keys / "known_hosts").write_text("\n".join(known) + "\n")
        (keys / "ssh_config").write_text("\n".join(config) + "\n")
        for node in NODES:  # sshd listening: the first login works
            sh("ssh", "-F", str(keys / "ssh_config"), "-o", "ConnectionAttempts=20", node, "true", ns=netns.prefix + "cl")
        yield netns, keys
    finally:
        for server in servers:
            server.kill()
            server.wait(10)


@needs_root
@needs_ssh
def test_capture_over_ssh_on_three_nodes_during_a_cross_node_request(ssh_cluster: tuple[Namespaces, Path], tmp_path: Path) -> None:
    netns, keys = ssh_cluster
    server = subprocess.Popen(
        ["ip", "netns", "exec", netns.prefix + "p3", sys.executable, "-m", "http.server", "80", "--bind", "10.244.3.2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    out = tmp_path / "cap"
    try:
        running = Capturing(
            ["ip", "netns", "exec", netns.prefix + "cl",
             *cniscope("capture", "--via", "ssh", "--ssh-config", str(keys / "ssh_config"), "--nodes", "n1,n2,n3",
                       "--duration", "60", "-o", str(out))]
        )
        body = netns.run("p1", "curl", "-sS", "--max-time", "10", "--retry", "3", "--retry-connrefused", "http://10.244.3.2/")
        assert "Directory listing" in body
        code, err = running.interrupt()
    finally:
        server.kill()
        server.wait(10)
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert [n["name"] for n in manifest["nodes"]] == ["n1", "n2", "n3"]
    for node in manifest["nodes"]:
        assert node["tcpdump"]["dropped"] == 0
        assert "not (tcp and host 192.168.77.100" in node["filter"]  # our own ssh session is left out
        # interrupted: no tcpdump left on any node, checked by the pid it reported and by what runs there
        assert comm(node["pid"]) is None
        assert all(comm(pid) != "tcpdump" for pid in netns.pids(node["name"]))
    n1 = set(tshark_names(out / "n1.pcapng"))
    n3 = set(tshark_names(out / "n3.pcapng"))
    assert {"veth00000001", "eth0"} <= n1
    assert {"veth00000003", "eth0"} <= n3
    request = subprocess.run(
        ["tshark", "-r", str(out / "n3.pcapng"), "-Y", "tcp.dstport == 80 && tcp.len > 0", "-T", "fields",
         "-e", "frame.interface_name", "-e", "frame.p2p_dir"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout.split()
    assert request == ["eth0", "1", "veth00000003", "0"]  # the GET arrives on the NIC (in) and goes to the pod (out)
    ssh_seen = subprocess.run(
        ["tshark", "-r", str(out / "n1.pcapng"), "-Y", "tcp.port == 22"], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert ssh_seen == ""

    analysis = subprocess.run(cniscope("analyze", str(out), "--json"), capture_output=True, text=True, timeout=120)
    assert analysis.returncode in (0, 1), analysis.stderr
    report = json.loads(analysis.stdout)
    crossing = [j for j in report["journeys"] if {"n1", "n3"} <= {hop["node"] for hop in j["hops"]}]
    assert crossing, f"no journey crosses n1 and n3: {analysis.stdout[:2000]}"

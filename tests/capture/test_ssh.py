"""Acceptance: `cniscope capture --via ssh` against real sshd servers, one per node namespace.

Topology (all namespaces cst-cap-<pid>-<n>-*): an underlay bridge joining nodes
n1..n3 (192.168.77.1-3) and a client (192.168.77.100) from which cniscope runs;
pod p1 on n1 (10.244.1.2) and pod p3 on n3 (10.244.3.2, an HTTP server), routed
through the nodes. Host keys and the client key are made per test; each sshd
runs with -f a temp config and is killed by pid.

The non-root tests log in as a throwaway local user (cnst<pid>-<n>, shell
/bin/sh, no home) that sshd lets in with the same client key, read from a
root-owned 0644 file under /run (sshd reads authorized_keys as the user, and
the root test's key directory is root-only). With sudo, the user gets the
sudoers rule docs/capture.md recommends, checked with visudo -cf. The user,
its sudoers drop-in and key directory are removed after the test whatever
happened, its leftover processes killed by pid first.
"""

from __future__ import annotations

import itertools
import json
import os
import pwd
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.marks import needs_root

from .conftest import Capturing, Namespaces, cniscope, comm, sh, tshark_names

SSH_TOOLS = ("ssh", "ssh-keygen", "/usr/sbin/sshd", "curl", "tshark")
needs_ssh = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in SSH_TOOLS), reason="needs OpenSSH client and server, curl and tshark"
)
SUDO_TOOLS = ("sudo", "visudo", "useradd", "userdel")
needs_sudo = pytest.mark.skipif(
    any(shutil.which(tool) is None for tool in SUDO_TOOLS), reason="needs sudo (apt-get install sudo), useradd and userdel"
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
USER_KEYS = """\
Match User {user}
  AuthorizedKeysFile {path}
"""
SUDOERS_RULE = "{user} ALL=(root) NOPASSWD: /bin/sh\n"  # the rule docs/capture.md recommends, as is
_users = itertools.count()


@dataclass
class SshCluster:
    netns: Namespaces
    keys: Path
    sshd: dict[str, int]  # node -> pid of its listening sshd
    user: str | None = None  # the non-root login, when the test asked for one


def user_pids(uid: int) -> list[int]:
    """Processes any of whose uids (real, effective, saved, fs) is `uid`: sudo itself keeps the user's real uid."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            uids = next((line.split()[1:] for line in status.splitlines() if line.startswith("Uid:")), [])
            if str(uid) in uids:
                pids.append(int(entry.name))
    return pids


@contextmanager
def local_user(keys: Path, sudo: bool) -> Iterator[tuple[str, Path]]:
    """A throwaway login (and its sudoers rule); yields its name and an authorized_keys file it can read."""
    name = f"cnst{os.getpid()}-{next(_users)}"
    sudoers = Path("/etc/sudoers.d") / name
    keydir: Path | None = None
    created = False
    try:
        # '*', not useradd's locked '!': without PAM, sshd refuses every login of a locked account
        sh("useradd", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/bin/sh", "--password", "*", name)
        created = True
        if sudo:
            draft = sudoers.with_name(name + ".draft")  # sudo skips names with a dot: invisible until renamed
            draft.write_text(SUDOERS_RULE.format(user=name))
            draft.chmod(0o440)
            try:
                sh("visudo", "-cqf", str(draft))
                draft.replace(sudoers)
            finally:
                draft.unlink(missing_ok=True)
            sh("visudo", "-cq")  # the whole configuration still parses
        keydir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir="/run"))
        keydir.chmod(0o755)
        authorized = keydir / "authorized_keys"
        authorized.write_text((keys / "client.pub").read_text())
        authorized.chmod(0o644)
        yield name, authorized
    finally:
        sudoers.unlink(missing_ok=True)
        if keydir is not None:
            shutil.rmtree(keydir, ignore_errors=True)
        if created:
            uid = pwd.getpwnam(name).pw_uid
            for _ in range(5):  # userdel refuses while the user runs a process
                for pid in user_pids(uid):
                    with suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                deleted = subprocess.run(["userdel", name], capture_output=True, text=True, timeout=30)
                if deleted.returncode == 0:
                    break
                time.sleep(0.2)
            else:
                raise RuntimeError(f"could not remove the test user {name}: {deleted.stderr.strip()}")


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
def ssh_cluster(netns: Namespaces, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SshCluster]:
    """The cluster with an sshd on every node; parametrized indirectly with {"sudo": bool}, also a non-root login."""
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
    with ExitStack() as stack:
        user = None
        extra = ""
        wanted = getattr(request, "param", None)
        if wanted is not None:
            user, authorized = stack.enter_context(local_user(keys, sudo=wanted["sudo"]))
            extra = USER_KEYS.format(user=user, path=authorized)  # only this user's keys move; root's stay root-only
        try:
            for node, address in NODES.items():
                sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(keys / f"host_{node}"))
                known.append(f"{address} {(keys / f'host_{node}.pub').read_text().strip()}")
                (keys / f"sshd_{node}").write_text(SSHD_CONFIG.format(address=address, dir=keys, node=node) + extra)
                servers.append(subprocess.Popen(
                    ["ip", "netns", "exec", netns.prefix + node, "/usr/sbin/sshd", "-D", "-e", "-f", str(keys / f"sshd_{node}")],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                ))
                config = [f"Host {node}", f"  HostName {address}", *config]
            (keys / "known_hosts").write_text("\n".join(known) + "\n")
            (keys / "ssh_config").write_text("\n".join(config) + "\n")
            for node, address in NODES.items():  # sshd listening: the first login works (and the user's, if any)
                sh("ssh", "-F", str(keys / "ssh_config"), "-o", "ConnectionAttempts=20", node, "true", ns=netns.prefix + "cl")
                if user:
                    sh("ssh", "-F", str(keys / "ssh_config"), f"{user}@{address}", "true", ns=netns.prefix + "cl")
            yield SshCluster(netns, keys, {node: server.pid for node, server in zip(NODES, servers, strict=True)}, user)
        finally:
            for server in servers:
                server.kill()
                server.wait(10)


def capture_during_request(cluster: SshCluster, nodes: str, out: Path) -> tuple[int, str]:
    """`cniscope capture --via ssh --nodes NODES` from the client while pod p1 GETs http://p3/; its exit code and stderr."""
    netns, keys = cluster.netns, cluster.keys
    server = subprocess.Popen(
        ["ip", "netns", "exec", netns.prefix + "p3", sys.executable, "-m", "http.server", "80", "--bind", "10.244.3.2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60  # a bound: a loaded machine takes seconds to start Python
        while "10.244.3.2:80" not in netns.run("p3", "ss", "-ltn"):
            assert time.monotonic() < deadline and server.poll() is None, "the HTTP server did not start"
            time.sleep(0.05)
        running = Capturing(
            ["ip", "netns", "exec", netns.prefix + "cl",
             *cniscope("capture", "--via", "ssh", "--ssh-config", str(keys / "ssh_config"), "--nodes", nodes,
                       "--duration", "60", "-o", str(out))]
        )
        # one GET, no retry: the tests count its frames
        body = netns.run("p1", "curl", "-sS", "--max-time", "10", "http://10.244.3.2/")
        assert "Directory listing" in body
        return running.interrupt()
    finally:
        server.kill()
        server.wait(10)


def request_frames(path: Path) -> list[str]:
    """Interface name and direction (p2p_dir: 1 in, 0 out) of every frame carrying the GET's payload."""
    return subprocess.run(
        ["tshark", "-r", str(path), "-Y", "tcp.dstport == 80 && tcp.len > 0", "-T", "fields",
         "-e", "frame.interface_name", "-e", "frame.p2p_dir"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout.split()


@needs_root
@needs_ssh
def test_capture_over_ssh_on_three_nodes_during_a_cross_node_request(ssh_cluster: SshCluster, tmp_path: Path) -> None:
    netns = ssh_cluster.netns
    out = tmp_path / "cap"
    code, err = capture_during_request(ssh_cluster, "n1,n2,n3", out)
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
    assert request_frames(out / "n3.pcapng") == ["eth0", "1", "veth00000003", "0"]  # the GET arrives on the NIC (in) and goes to the pod (out)
    ssh_seen = subprocess.run(
        ["tshark", "-r", str(out / "n1.pcapng"), "-Y", "tcp.port == 22"], capture_output=True, text=True, timeout=120, check=True
    ).stdout
    assert ssh_seen == ""

    analysis = subprocess.run(cniscope("analyze", str(out), "--json"), capture_output=True, text=True, timeout=120)
    assert analysis.returncode in (0, 1), analysis.stderr
    report = json.loads(analysis.stdout)
    crossing = [j for j in report["journeys"] if {"n1", "n3"} <= {hop["node"] for hop in j["hops"]}]
    assert crossing, f"no journey crosses n1 and n3: {analysis.stdout[:2000]}"


def leftovers(cluster: SshCluster, uid: int, seconds: float = 60) -> dict[str, list[str]]:
    """What still runs as the user, or in a node namespace besides its listening sshd, after up to `seconds`
    (sshd ends a session a moment after its client): {place: ["pid comm", ...]}, empty when nothing."""
    deadline = time.monotonic() + seconds
    while True:
        found = {"user": [f"{pid} {comm(pid)}" for pid in user_pids(uid)]}
        for node, sshd in cluster.sshd.items():
            found[node] = [f"{pid} {comm(pid)}" for pid in cluster.netns.pids(node) if pid != sshd]
        found = {place: pids for place, pids in found.items() if pids}
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.1)


@needs_root
@needs_ssh
@needs_sudo
@pytest.mark.parametrize("ssh_cluster", [{"sudo": True}], indirect=True)
def test_capture_over_ssh_as_a_user_with_sudo(ssh_cluster: SshCluster, tmp_path: Path) -> None:
    netns, user = ssh_cluster.netns, ssh_cluster.user
    assert user is not None
    uid = pwd.getpwnam(user).pw_uid
    members = {"192.168.77.1": "n1", "192.168.77.3": "n3"}
    out = tmp_path / "cap"
    code, err = capture_during_request(ssh_cluster, ",".join(f"{user}@{address}" for address in members), out)
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    assert [n["name"] for n in manifest["nodes"]] == list(members)
    for node in manifest["nodes"]:
        assert node["target"] == f"{user}@{node['name']}"
        assert node["facts"]["uid"] == uid
        assert node["sudo"] is True
        remote = shlex.split(node["command"][-1])
        assert remote[:4] == ["sudo", "-n", "sh", "-c"], node["command"]
        assert "not (tcp and host 192.168.77.100" in node["filter"]
        # stopped by `sudo -n sh -c 'kill ...'` (as the user, kill could not signal root's tcpdump): a clean exit
        assert node["warnings"] == [], node["warnings"]
        assert node["exit_status"] == 0, node["stderr"]
        assert node["tcpdump"]["dropped"] == 0
        assert comm(node["pid"]) is None
        assert all(comm(pid) != "tcpdump" for pid in netns.pids(members[node["name"]]))
    assert leftovers(ssh_cluster, uid) == {}  # no sudo, timeout, tcpdump nor ssh session left, on any node
    assert {"veth00000001", "eth0"} <= set(tshark_names(out / "192.168.77.1.pcapng"))
    assert {"veth00000003", "eth0"} <= set(tshark_names(out / "192.168.77.3.pcapng"))
    # the GET on both nodes: from the pod (in) out of the NIC on n1, from the NIC (in) to the pod (out) on n3
    assert request_frames(out / "192.168.77.1.pcapng") == ["veth00000001", "1", "eth0", "0"]
    assert request_frames(out / "192.168.77.3.pcapng") == ["eth0", "1", "veth00000003", "0"]


@needs_root
@needs_ssh
@needs_sudo
@pytest.mark.parametrize("ssh_cluster", [{"sudo": False}], indirect=True)
def test_capture_over_ssh_as_a_user_without_sudo_fails_clearly(ssh_cluster: SshCluster, tmp_path: Path) -> None:
    netns, keys, user = ssh_cluster.netns, ssh_cluster.keys, ssh_cluster.user
    assert user is not None
    uid = pwd.getpwnam(user).pw_uid
    out = tmp_path / "cap"
    done = subprocess.run(
        ["ip", "netns", "exec", netns.prefix + "cl",
         *cniscope("capture", "--via", "ssh", "--ssh-config", str(keys / "ssh_config"),
                   "--nodes", f"{user}@192.168.77.1,{user}@192.168.77.3", "--duration", "60", "-o", str(out))],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 5, done.stderr  # environment (README, exit codes)
    assert "Traceback" not in done.stderr
    for address in ("192.168.77.1", "192.168.77.3"):  # each node: who was refused, and what sudo said
        assert f"{address}: `sudo -n` refused for {user}@{address} (uid {uid}): sudo: " in done.stderr, done.stderr
    assert "needs a sudoers rule" in done.stderr and "NOPASSWD: /bin/sh" in done.stderr, done.stderr  # and what to do
    assert done.stderr.count("\n") == 1, done.stderr  # one line: the error
    assert not (out / "manifest.json").exists()
    assert not (out / ".raw").exists()
    for member in ("n1", "n3"):
        assert all(comm(pid) != "tcpdump" for pid in netns.pids(member))
    assert leftovers(ssh_cluster, uid) == {}


@needs_root
@needs_ssh
def test_a_lost_ssh_connection_fails_the_capture_and_stops_its_tcpdump(ssh_cluster: SshCluster, tmp_path: Path) -> None:
    """The sshd serving our session on n2 dies: cniscope stops at once naming n2, and n2's tcpdump ends with it."""
    netns = ssh_cluster.netns
    out = tmp_path / "cap"
    running = Capturing(
        ["ip", "netns", "exec", netns.prefix + "cl",
         *cniscope("capture", "--via", "ssh", "--ssh-config", str(ssh_cluster.keys / "ssh_config"), "--nodes", "n1,n2",
                   "--duration", "600", "-o", str(out))]
    )
    assert any(comm(pid) == "tcpdump" for pid in netns.pids("n2"))
    sessions = [pid for pid in netns.pids("n2") if comm(pid) == "sshd" and pid != ssh_cluster.sshd["n2"]]
    assert sessions
    for pid in sessions:
        os.kill(pid, signal.SIGKILL)
    code, err = running.finish(timeout=120)  # well before --duration 600
    assert code == 5, err
    assert "the capture failed on n2: the connection to the node was lost (ssh exit 255)" in err
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stop_reason"] == "failed on n2"
    deadline = time.monotonic() + 20  # the node's own limit would be duration + 30 s
    while any(comm(pid) == "tcpdump" for pid in netns.pids("n2")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(comm(pid) == "tcpdump" for pid in netns.pids("n2"))

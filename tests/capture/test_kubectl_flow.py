"""The kubectl transport's flow (create, wait, exec, stop, delete) through the real runner.

No API server can run here, so `kubectl` is tests/capture/data/fake_kubectl.py, which
turns `kubectl exec` in a capture pod into `ip netns exec` in its node's namespace.
What it checks is ours: the order of the commands, that every capture pod is
deleted (also after Ctrl-C and after errors), and that the data comes back.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.marks import needs_root

from .conftest import UDP_BLAST, Capturing, Namespaces, cniscope, comm, tshark_names

FAKE = Path(__file__).parent / "data" / "fake_kubectl.py"


def fake_env(tmp_path: Path, netns: Namespaces, pods: dict | None = None) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE} \"$@\"\n")
    (bin_dir / "kubectl").chmod(0o755)
    state = tmp_path / "state"
    state.mkdir()
    (state / "pods.json").write_text(json.dumps(pods or {}))
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_KUBECTL_STATE": str(state),
            "FAKE_KUBECTL_NETNS_PREFIX": netns.prefix}


def log(env: dict[str, str]) -> list[list[str]]:
    return [json.loads(line) for line in (Path(env["FAKE_KUBECTL_STATE"]) / "log.jsonl").read_text().splitlines()]


def verbs(entries: list[list[str]], pod: str) -> list[str]:
    """The kubectl verbs that concern one capture pod, with the node-side program for exec."""
    out = []
    for argv in entries:
        if pod not in " ".join(argv):
            continue
        if argv[0] == "exec":
            command = argv[argv.index("--") + 1 :]
            out.append("exec " + ("tcpdump" if "tcpdump" in command else "kill" if "cniscope-stop" in command else "inventory"))
        else:
            out.append(argv[0])
    return out


def nodes(netns: Namespaces) -> None:
    netns.add("a")
    netns.add("b")
    netns.veth("a", "eth0", "b", "eth0")
    netns.ip("a", "addr", "add", "10.79.0.1/24", "dev", "eth0")
    netns.ip("b", "addr", "add", "10.79.0.2/24", "dev", "eth0")


@needs_root
@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark")
def test_pods_by_selector_are_captured_and_capture_pods_deleted_even_on_ctrl_c(netns: Namespaces, tmp_path: Path) -> None:
    nodes(netns)
    netns.add("web")
    netns.veth("b", "veth0000beef", "web", "eth0")
    netns.ip("web", "addr", "add", "10.244.2.7/24", "dev", "eth0")
    netns.ip("b", "route", "add", "10.244.2.7/32", "dev", "veth0000beef")
    netns.ip("a", "route", "add", "10.244.2.0/24", "via", "10.79.0.2")
    netns.run("b", "sysctl", "-qw", "net.ipv4.ip_forward=1")
    netns.ip("b", "route", "add", "default", "via", "10.79.0.1")  # the NIC: eth0
    env = fake_env(tmp_path, netns, {"shop/web": {"node": "b", "ip": "10.244.2.7", "netns": netns.prefix + "web", "labels": {"app": "web"}}})
    out = tmp_path / "cap"
    argv = cniscope("capture", "--via", "kubectl", "--namespace", "cniscope", "--nodes", "a", "--selector", "app=web", "--pod-namespace", "shop",
                    "--filter", "udp port 9999", "--duration", "60", "-o", str(out))
    running = Capturing(argv, env=env)
    netns.run("a", sys.executable, "-c", UDP_BLAST, "10.244.2.7", "10")
    code, err = running.interrupt()
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    entries = log(env)
    for node in manifest["nodes"]:
        pod = node["target"].split("/")[1]
        assert verbs(entries, pod) == ["create", "wait", "exec inventory", "exec tcpdump", "exec kill", "exec inventory", "delete"]
        assert comm(node["pid"]) is None
    assert not any((Path(env["FAKE_KUBECTL_STATE"]) / "capture-pods").iterdir())  # every capture pod deleted
    assert [e[:4] for e in entries if e[0] == "get"] == [["get", "pods", "-n", "shop"], ["get", "pod", "-n", "shop"]]
    assert manifest["pods"][0]["host_name"] == "veth0000beef" and manifest["pods"][0]["node"] == "b"
    assert sorted(tshark_names(out / "b.pcapng")) == ["eth0"] * 10 + ["veth0000beef"] * 10


@needs_root
def test_pods_are_deleted_when_the_capture_fails(netns: Namespaces, tmp_path: Path) -> None:
    nodes(netns)
    env = fake_env(tmp_path, netns)
    done = subprocess.run(
        cniscope("capture", "--via", "kubectl", "--nodes", "a,b", "--filter", "tcp port 80 and (", "-o", str(tmp_path / "cap")),
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2 and "refused the filter" in done.stderr
    deleted = [argv for argv in log(env) if argv[0] == "delete"]
    created = [argv for argv in log(env) if argv[0] == "create"]
    assert len(created) == len(deleted) == 2
    assert not any((Path(env["FAKE_KUBECTL_STATE"]) / "capture-pods").iterdir())

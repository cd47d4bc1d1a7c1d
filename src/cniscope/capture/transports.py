"""How a node-side argument list reaches a node: locally, in a network namespace, over SSH, through kubectl.

A transport only *builds* commands (and the setup/teardown commands some need);
the runner executes them. No user text is ever joined into a command line, except
for SSH where the remote side is a shell: there each argument is `shlex.quote`d.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from cniscope.capture import validate
from cniscope.host import Command


class Transport(Protocol):
    forwards_stdin: ClassVar[bool]  # our standard input reaches the node's command (kubectl exec without -i: no)

    @property
    def kind(self) -> str:
        """local, netns, ssh, kubectl, kubectl-debug."""

    def target(self, node: str) -> str:
        """What the transport addresses for `node` (a namespace, an ssh destination, a pod)."""

    def wrap(self, node: str, argv: list[str], sudo: bool = False) -> tuple[str, ...]:
        """The client-side argument list that runs `argv` on `node`."""

    def setup(self, node: str, limit_s: int) -> list[Command]:
        """Steps before anything runs on `node` (kubectl: create the capture pod)."""

    def teardown(self, node: str) -> list[Command]:
        """Steps that remove what setup created; always run, also after errors."""

    def describe(self) -> dict[str, Any]:
        """For the manifest."""


def node_label(node: str) -> str:
    """The node's name in files and sections: an ssh `user@host` is recorded as `host`."""
    return node.rpartition("@")[2]


@dataclass(frozen=True)
class Local:
    """This machine."""

    kind: str = "local"
    forwards_stdin: ClassVar[bool] = True

    def target(self, node: str) -> str:
        return "localhost"

    def wrap(self, node: str, argv: list[str], sudo: bool = False) -> tuple[str, ...]:
        return tuple(["sudo", "-n", *argv] if sudo else argv)

    def setup(self, node: str, limit_s: int) -> list[Command]:
        return []

    def teardown(self, node: str) -> list[Command]:
        return []

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind}


@dataclass(frozen=True)
class Netns:
    """Node NAME is the network namespace PREFIX+NAME on this machine (`lab:NAME` uses the lab's prefix)."""

    prefix: str
    lab: str | None = None
    kind: str = "netns"
    forwards_stdin: ClassVar[bool] = True

    def target(self, node: str) -> str:
        return self.prefix + node

    def wrap(self, node: str, argv: list[str], sudo: bool = False) -> tuple[str, ...]:
        return (*(["sudo", "-n"] if sudo else []), "ip", "netns", "exec", self.target(node), *argv)

    def setup(self, node: str, limit_s: int) -> list[Command]:
        return []

    def teardown(self, node: str) -> list[Command]:
        return []

    def describe(self) -> dict[str, Any]:
        return {"kind": "lab" if self.lab else self.kind, "prefix": self.prefix, "lab": self.lab}


SSH_DEFAULT_OPTIONS = ("BatchMode=yes", "ConnectTimeout=10", "ServerAliveInterval=5", "ServerAliveCountMax=3")


@dataclass(frozen=True)
class Ssh:
    """The OpenSSH client: the user's ~/.ssh/config, agent, jump hosts and host-key checks apply."""

    config: str | None = None
    options: tuple[str, ...] = ()
    kind: str = "ssh"
    forwards_stdin: ClassVar[bool] = True

    def target(self, node: str) -> str:
        return node

    def base(self) -> list[str]:
        args = ["ssh", "-T"]
        if self.config:
            args += ["-F", self.config]
        for option in (*SSH_DEFAULT_OPTIONS, *self.options):
            args += ["-o", option]
        return args

    def wrap(self, node: str, argv: list[str], sudo: bool = False) -> tuple[str, ...]:
        remote = shlex.join(["sudo", "-n", *argv] if sudo else argv)
        return (*self.base(), "--", validate.node_name(node), remote)

    def setup(self, node: str, limit_s: int) -> list[Command]:
        return []

    def teardown(self, node: str) -> list[Command]:
        return []

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "config": self.config, "options": list(self.options)}


DEFAULT_IMAGE = "docker.io/nicolaka/netshoot:v0.13"
POD_LABEL = "app.kubernetes.io/name"
POD_LABEL_VALUE = "cniscope-capture"
SESSION_LABEL = "cniscope.io/session"
# tcpdump: NET_RAW opens the socket, NET_ADMIN sizes its buffer (-B), SETUID/SETGID for -Z root.
POD_CAPABILITIES = ("NET_RAW", "NET_ADMIN", "SETUID", "SETGID")


@dataclass(frozen=True)
class Kubectl:
    """A short-lived pod per node (hostNetwork, hostPID, POD_CAPABILITIES), used through `kubectl exec`.

    Chosen over `kubectl debug node/NAME`: exec streams binary pcap without a TTY,
    the pod has a name we choose (so cleanup deletes exactly it) and an
    activeDeadlineSeconds, so Kubernetes removes it even if this client dies.
    """

    namespace: str = "default"
    image: str = DEFAULT_IMAGE
    context: str | None = None
    kubeconfig: str | None = None
    session: str = "0"
    kind: str = "kubectl"
    forwards_stdin: ClassVar[bool] = False

    def kubectl(self) -> list[str]:
        args = ["kubectl"]
        if self.kubeconfig:
            args += ["--kubeconfig", self.kubeconfig]
        if self.context:
            args += ["--context", self.context]
        return args

    def pod_name(self, node: str) -> str:
        digest = hashlib.sha256(node.encode()).hexdigest()[:10]
        return f"cniscope-capture-{self.session}-{digest}"

    def target(self, node: str) -> str:
        return f"{self.namespace}/{self.pod_name(node)}"

    def wrap(self, node: str, argv: list[str], sudo: bool = False) -> tuple[str, ...]:
        return (*self.kubectl(), "exec", "-n", self.namespace, self.pod_name(node), "-c", "capture", "--", *argv)

    def manifest(self, node: str, limit_s: int) -> dict[str, Any]:
        validate.kube_node_name(node)
        deadline = limit_s + 120
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.pod_name(node),
                "namespace": self.namespace,
                "labels": {POD_LABEL: POD_LABEL_VALUE, SESSION_LABEL: self.session},
            },
            "spec": {
                "nodeName": node,
                "hostNetwork": True,
                "hostPID": True,
                "restartPolicy": "Never",
                "activeDeadlineSeconds": deadline,
                "terminationGracePeriodSeconds": 0,
                "automountServiceAccountToken": False,
                "tolerations": [{"operator": "Exists"}],
                "containers": [
                    {
                        "name": "capture",
                        "image": self.image,
                        "command": ["sleep", str(deadline)],
                        "securityContext": {
                            "privileged": False,
                            "runAsUser": 0,
                            "capabilities": {"add": list(POD_CAPABILITIES), "drop": ["ALL"]},
                        },
                        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}},
                    }
                ],
            },
        }

    def setup(self, node: str, limit_s: int) -> list[Command]:
        name = self.pod_name(node)
        return [
            Command((*self.kubectl(), "create", "-f", "-"), f"create capture pod {name} on {node}",
                 stdin=json.dumps(self.manifest(node, limit_s), sort_keys=True)),
            Command((*self.kubectl(), "wait", "-n", self.namespace, "--for=condition=Ready", f"pod/{name}", "--timeout=120s"),
                 f"wait for {name}"),
        ]

    def teardown(self, node: str) -> list[Command]:
        name = self.pod_name(node)
        return [
            Command((*self.kubectl(), "delete", "pod", "-n", self.namespace, name, "--ignore-not-found", "--wait=false",
                        "--now"), f"delete capture pod {name}")
        ]

    def pod_lookup(self, namespace: str, name: str) -> Command:
        return Command((*self.kubectl(), "get", "pod", "-n", namespace, name, "-o", "json"), f"find pod {namespace}/{name}")

    def pod_select(self, namespace: str, selector: str) -> Command:
        return Command((*self.kubectl(), "get", "pods", "-n", namespace, "-l", selector, "-o", "json"),
                    f"find pods {selector} in {namespace}")

    def pod_peer_index(self, namespace: str, name: str) -> Command:
        return Command((*self.kubectl(), "exec", "-n", namespace, name, "--", "cat", "/sys/class/net/eth0/iflink"),
                    f"peer ifindex of {namespace}/{name} eth0")

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "namespace": self.namespace, "image": self.image, "context": self.context, "session": self.session}


# `kubectl debug --attach` streams from the moment it attaches: what the command prints before is lost, so the
# command waits this long before it starts (the pcap header and tcpdump's pid come first)
ATTACH_GRACE_S = 3


@dataclass(frozen=True)
class KubectlDebug(Kubectl):
    """`kubectl debug node/NAME --profile=sysadmin`, which users already know (`--via kubectl:debug`).

    Each command on a node runs in its own debugging pod (host network and PIDs, privileged by the sysadmin
    profile), attached without a TTY so that binary pcap streams back unchanged; stopping tcpdump is one more
    such pod that signals it by pid (the host's PID namespace is shared). Kubernetes names these pods
    (node-debugger-NAME-xxxxx) and leaves them Completed, as `kubectl debug node` always does: delete them
    afterwards (docs/capture.md). `--via kubectl` instead makes pods with names of ours and deletes them.
    """

    kind: str = "kubectl-debug"

    def target(self, node: str) -> str:
        return f"node/{validate.kube_node_name(node)}"

    def wrap(self, node: str, argv: list[str], sudo: bool = False) -> tuple[str, ...]:
        waited = ["sh", "-c", f'sleep {ATTACH_GRACE_S}; exec "$@"', "cniscope-attach", *argv]
        return (*self.kubectl(), "debug", self.target(node), "--profile=sysadmin", f"--image={self.image}",
                      "--attach", "--quiet", "--", *waited)

    def setup(self, node: str, limit_s: int) -> list[Command]:
        return []

    def teardown(self, node: str) -> list[Command]:
        return []

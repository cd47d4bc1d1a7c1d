"""Checks on user text that ends up in commands run on nodes.

Every node-side command is an argument list; over SSH each argument is also
shell-quoted. These checks are the second fence: names that could be read as
options (leading `-`) or that carry shell syntax are refused with a message
saying what was expected.
"""

from __future__ import annotations

import re

import click

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,251}[A-Za-z0-9])?$")
SSH_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9._-]{0,31}$")
LAB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,30}$")
IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,254}$")
# Characters no BPF expression needs but shells act on. (BPF does use ( ) < > & | ! and spaces.)
FILTER_FORBIDDEN = frozenset(";`$'\"\n\r\0")


def node_name(text: str) -> str:
    """A node as the transport addresses it: a host name or alias, for SSH optionally `user@host`."""
    user, at, host = text.rpartition("@")
    if not HOST.match(host) or (at and not SSH_USER.match(user)):
        raise click.BadParameter(
            f"{text!r} is not a node name: expected letters, digits, '.', '_' or '-' (not leading), optionally user@ before it",
            param_hint="--nodes",
        )
    return text


def kube_node_name(text: str) -> str:
    if not DNS1123_SUBDOMAIN.match(text):
        raise click.BadParameter(f"{text!r} is not a Kubernetes node name (DNS-1123 subdomain)", param_hint="--nodes")
    return text


def pod_ref(text: str) -> tuple[str, str]:
    """`NS/NAME` -> (namespace, name); both DNS-1123 (namespace a label, name a subdomain)."""
    namespace, sep, name = text.partition("/")
    if not sep:
        namespace, name = "default", text
    if not DNS1123_LABEL.match(namespace) or not DNS1123_SUBDOMAIN.match(name):
        raise click.BadParameter(f"{text!r} is not NAMESPACE/POD with DNS-1123 names", param_hint="--pod")
    return namespace, name


def bpf_filter(text: str) -> str:
    """A tcpdump filter expression: refuse shell syntax and a leading '-' (it is still passed as one quoted argument)."""
    bad = sorted(FILTER_FORBIDDEN.intersection(text))
    if bad:
        shown = ", ".join(repr(ch) for ch in bad)
        raise click.BadParameter(f"filter contains {shown}, which no tcpdump filter needs", param_hint="--filter")
    if text.strip().startswith("-"):
        raise click.BadParameter("a filter cannot start with '-' (it would read as an option)", param_hint="--filter")
    return text.strip()


SELECTOR = re.compile(r"^[A-Za-z0-9._/=!, ()-]{1,500}$")


def selector(text: str) -> str:
    """A Kubernetes label selector (`app=web`, `tier in (a,b)`); it goes to kubectl as one argument."""
    if not SELECTOR.match(text) or text.startswith("-"):
        raise click.BadParameter(f"{text!r} is not a label selector", param_hint="--selector")
    return text


def image(text: str) -> str:
    if not IMAGE.match(text):
        raise click.BadParameter(f"{text!r} is not a container image reference", param_hint="--image")
    return text


def ssh_option(text: str) -> str:
    """An OpenSSH `-o` option: `Key=Value`."""
    key, sep, _ = text.partition("=")
    if not sep or not key.isalnum() or "\n" in text:
        raise click.BadParameter(f"{text!r} is not an ssh option Key=Value", param_hint="--ssh-option")
    return text

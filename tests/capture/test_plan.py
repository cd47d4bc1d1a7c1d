"""Plans as data (no root): argument lists, quoting for SSH, injection attempts, --dry-run."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from cniscope.capture import nodeside, validate
from cniscope.capture.plan import Limits, build, capture_step
from cniscope.capture.transports import Local, Netns, Ssh
from cniscope.cli import cli

INJECTIONS = [
    "; rm -rf /tmp/cniscope-injected",
    "$(touch /tmp/cniscope-injected)",
    "`touch /tmp/cniscope-injected`",
    "port 80\ntouch /tmp/cniscope-injected",
    "-w /tmp/cniscope-injected",
    "--help",
    "port 80' ; touch /tmp/cniscope-injected ; '",
]


@pytest.mark.parametrize("text", INJECTIONS + ["a b", "n1|id", "n1&", "../etc", "user@", "@host", "ho st"])
def test_node_names_with_shell_or_option_syntax_are_refused(text: str) -> None:
    with pytest.raises(click.BadParameter):
        validate.node_name(text)


@pytest.mark.parametrize("text", ["node3", "worker-1.example.com", "root@10.0.0.7", "k8s_node"])
def test_plain_node_names_pass(text: str) -> None:
    assert validate.node_name(text) == text


@pytest.mark.parametrize("text", INJECTIONS[:5] + ["Default/web", "ns/Web_1", "ns/", "/web", "a/b/c"])
def test_pod_refs_must_be_dns1123(text: str) -> None:
    with pytest.raises(click.BadParameter):
        validate.pod_ref(text)


def test_pod_refs_parse() -> None:
    assert validate.pod_ref("kube-system/coredns-5d78c9869d-abcde") == ("kube-system", "coredns-5d78c9869d-abcde")
    assert validate.pod_ref("web-0") == ("default", "web-0")


@pytest.mark.parametrize("text", INJECTIONS[:5] + INJECTIONS[6:])
def test_filters_with_shell_syntax_or_a_leading_dash_are_refused(text: str) -> None:
    with pytest.raises(click.BadParameter):
        validate.bpf_filter(text)


@pytest.mark.parametrize("text", ["tcp[13] & 2 != 0 and (port 80 or port 443)", "not arp && len > 100 || icmp", "ether proto \\ip"])
def test_real_bpf_syntax_passes(text: str) -> None:
    assert validate.bpf_filter(text) == text


@pytest.mark.parametrize("evil", INJECTIONS)
def test_ssh_remote_command_reaches_the_remote_shell_as_the_same_arguments(evil: str, tmp_path: Path) -> None:
    """Even text that skipped validation arrives as one inert argument: run the exact remote line with sh."""
    marker = Path("/tmp/cniscope-injected")
    marker.unlink(missing_ok=True)
    argv = Ssh().wrap("node1", ["printf", "%s|", evil, "second"])
    assert argv[-3:-1] == ("--", "node1")
    remote = argv[-1]
    assert shlex.split(remote) == ["printf", "%s|", evil, "second"]
    done = subprocess.run(["sh", "-c", remote], capture_output=True, text=True, timeout=10, cwd=tmp_path)
    assert done.stdout == f"{evil}|second|"
    assert not marker.exists()


def test_ssh_options_batch_mode_config_and_sudo() -> None:
    transport = Ssh(config="/home/me/.ssh/lab_config", options=("ProxyJump=bastion",))
    argv = transport.wrap("admin@node2", nodeside.stop_argv(1234), sudo=True)
    assert argv[:4] == ("ssh", "-T", "-F", "/home/me/.ssh/lab_config")
    assert "BatchMode=yes" in argv and "ProxyJump=bastion" in argv
    assert shlex.split(argv[-1]) == ["sudo", "-n", "sh", "-c", nodeside.STOP_SCRIPT, "cniscope-stop", "1234"]
    with pytest.raises(click.BadParameter):
        transport.wrap("-oProxyCommand=touch /tmp/x", ["true"])


def test_stop_script_uses_the_pid_as_data() -> None:
    done = subprocess.run(nodeside.stop_argv("$(echo 1)"), capture_output=True, text=True, timeout=10)
    assert done.returncode != 0 and "$(echo 1)" in done.stderr  # kill got the literal text, no substitution


def test_plan_lists_every_command_per_node() -> None:
    plan = build(Netns(prefix="cnl-demo-", lab="demo"), ["node1", "node2"], Limits(duration_s=5, count=100, max_size_mb=10), "port 80")
    assert [n.target for n in plan.nodes] == ["cnl-demo-node1", "cnl-demo-node2"]
    capture = plan.nodes[0].capture.argv
    assert capture[:4] == ("ip", "netns", "exec", "cnl-demo-node1")
    tcpdump = capture[capture.index("tcpdump"):]
    for pair in (("-i", "any"), ("-B", "32768"), ("-s", "65535"), ("-Z", "root"), ("-c", "100"), ("-w", "-")):
        assert tcpdump[tcpdump.index(pair[0]) + 1] == pair[1]
    assert capture[capture.index("timeout"):capture.index("tcpdump")] == ("timeout", "-s", "TERM", "-k", "5", "35")
    text = plan.render()
    assert text.count("tcpdump -i any") == 2 and "kill -s TERM" in text and "duration 5 s" in text


def test_sudo_is_added_only_when_the_node_says_we_are_not_root() -> None:
    limits = Limits()
    settings = nodeside.TcpdumpSettings()
    plain = capture_step(Ssh(), "n1", limits, settings, None, sudo=False)
    sudo = capture_step(Ssh(), "n1", limits, settings, None, sudo=True)
    assert shlex.split(plain.argv[-1])[0] == "sh"
    assert shlex.split(sudo.argv[-1])[:2] == ["sudo", "-n"]


def test_duplicate_nodes_are_refused() -> None:
    with pytest.raises(ValueError, match="node named twice"):
        build(Ssh(), ["n1", "root@n1"])


def test_ssh_exclusion_and_pod_filters() -> None:
    assert nodeside.exclude_ssh("port 80", "10.0.0.9 51234 10.0.0.1 22") == "(port 80) and not (tcp and host 10.0.0.9 and host 10.0.0.1 and port 22)"
    assert nodeside.exclude_ssh(None, None) is None
    assert nodeside.exclude_ssh("udp", "$(id) 1 2 3") == "udp"  # not addresses: ignored, never pasted
    assert nodeside.ifindex_filter([7, 2, 7], "tcp") == "(ifindex 2 or ifindex 7) and (tcp)"


def test_summary_parsing() -> None:
    lines = ["tcpdump: listening on any", "12 packets captured", "15 packets received by filter", "3 packets dropped by kernel"]
    summary = nodeside.parse_summary(lines)
    assert (summary.captured, summary.received, summary.dropped) == (12, 15, 3)
    assert nodeside.parse_summary(["tcpdump: any: You don't have permission"]).dropped is None


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["capture", *args])
    return result.exit_code, result.output


def test_dry_run_prints_the_plan_without_running_anything() -> None:
    code, out = run_cli("--via", "ssh", "--nodes", "n1,n2", "--nodes", "n3", "--filter", "tcp port 80", "--dry-run")
    assert code == 0, out
    assert out.count("ssh -T -o BatchMode=yes") >= 6
    assert "'tcp port 80'" in out and "node n3 (n3):" in out


@pytest.mark.parametrize(
    "args",
    [
        ["--via", "ssh", "--nodes", "n1;rm -rf /", "--dry-run"],
        ["--via", "ssh", "--nodes", "n1", "--filter", "port 80; rm -rf /", "--dry-run"],
        ["--via", "kubectl", "--nodes", "Node_1", "--dry-run"],
        ["--via", "kubectl", "--pod", "default/$(id)", "--nodes", "n1", "--dry-run"],
        ["--via", "lab:../x", "--nodes", "n1", "--dry-run"],
        ["--via", "kubectl", "--selector", "app=web;id", "--dry-run"],
        ["--via", "kubectl", "--selector", "-oyaml", "--dry-run"],
        ["--via", "telnet", "--nodes", "n1", "--dry-run"],
        ["--via", "ssh", "--nodes", "n1"],  # no -o
    ],
)
def test_cli_refuses_bad_arguments_as_usage_errors(args: list[str]) -> None:
    code, out = run_cli(*args)
    assert code == 2, out


def test_local_defaults_to_this_host() -> None:
    code, out = run_cli("--dry-run")
    assert code == 0 and "via local" in out and "timeout -s TERM -k 5 90 tcpdump" in out
    assert isinstance(build(Local(), ["x"]).nodes[0].capture.argv, tuple)

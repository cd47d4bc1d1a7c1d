"""The kubectl transport, without an API server: the pod manifest against a v1 Pod schema,
every kubectl flag against the installed kubectl's own help."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import click
import jsonschema
import pytest

from cniscope.capture import nodeside
from cniscope.capture.plan import Limits, build, stop_step
from cniscope.capture.transports import POD_LABEL, Kubectl, KubectlDebug

SCHEMA = json.loads((Path(__file__).parent / "data" / "pod-v1.schema.json").read_text())
KUBECTL = Kubectl(namespace="kube-system", context="prod", kubeconfig="/tmp/kc", session="a1b2c3")


def test_capture_pod_manifest_is_a_valid_v1_pod() -> None:
    manifest = KUBECTL.manifest("ip-10-0-1-7.eu-west-1.compute.internal", 90)
    jsonschema.validate(manifest, SCHEMA)
    spec = manifest["spec"]
    assert spec["nodeName"] == "ip-10-0-1-7.eu-west-1.compute.internal"
    assert spec["hostNetwork"] and spec["hostPID"] and spec["restartPolicy"] == "Never"
    assert spec["activeDeadlineSeconds"] >= 90  # Kubernetes removes the pod even if cniscope dies
    assert manifest["metadata"]["labels"][POD_LABEL] == "cniscope-capture"
    assert len(manifest["metadata"]["name"]) <= 63


def test_the_schema_catches_what_the_api_server_would_refuse() -> None:
    """The schema is not a rubber stamp: typos, bad names and bad values fail."""
    good = KUBECTL.manifest("node-1", 90)
    broken = []
    typo = copy.deepcopy(good)
    typo["spec"]["hostNetwrok"] = True
    broken.append(typo)
    upper = copy.deepcopy(good)
    upper["metadata"]["name"] = "Capture_Pod"
    broken.append(upper)
    policy = copy.deepcopy(good)
    policy["spec"]["restartPolicy"] = "Sometimes"
    broken.append(policy)
    cap = copy.deepcopy(good)
    cap["spec"]["containers"][0]["securityContext"]["capabilities"]["add"] = ["CAP_NET_RAW"]
    broken.append(cap)
    for manifest in broken:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(manifest, SCHEMA)


def test_node_names_that_are_not_dns1123_never_reach_a_manifest() -> None:
    for bad in ("Node_1", "node;rm -rf /", "-node", "a" * 254):
        with pytest.raises(click.BadParameter, match="DNS-1123"):
            KUBECTL.manifest(bad, 60)


def test_the_plan_runs_setup_exec_and_teardown_per_node() -> None:
    plan = build(KUBECTL, ["node-1", "node-2"], Limits(duration_s=30), "tcp port 80")
    node = plan.nodes[0]
    pod = KUBECTL.pod_name("node-1")
    assert [s.argv[5] for s in node.setup] == ["create", "wait"]
    assert json.loads(node.setup[0].stdin or "")["spec"]["nodeName"] == "node-1"
    assert node.capture.argv[:11] == ("kubectl", "--kubeconfig", "/tmp/kc", "--context", "prod", "exec", "-n", "kube-system", pod, "-c", "capture")
    assert node.capture.argv[11] == "--"
    assert node.capture.argv[-2:] == ("--", "tcp port 80")
    assert node.teardown[0].argv[5:9] == ("delete", "pod", "-n", "kube-system")
    assert pod in node.teardown[0].argv
    assert plan.nodes[1].capture.argv[8] != pod  # one pod per node


@cache
def kubectl_help(*words: str) -> str:
    done = subprocess.run(["kubectl", *words], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def flags_of(argv: tuple[str, ...]) -> tuple[str, list[str]]:
    """The kubectl subcommand and the flags given to it (the words before '--')."""
    words = list(argv[1:])
    flags: list[str] = []
    sub = None
    i = 0
    while i < len(words) and words[i] != "--":
        word = words[i]
        if word.startswith("-"):
            flags.append(word.split("=", 1)[0])
            if word in ("--kubeconfig", "--context", "-n", "-c", "-f", "-o"):
                i += 1
        elif sub is None:
            sub = word
        elif word.startswith("node/"):
            pass  # kubectl debug's target
        i += 1
    assert sub is not None
    return sub, flags


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_every_kubectl_flag_exists_in_the_installed_kubectl() -> None:
    steps = [
        *KUBECTL.setup("node-1", 90),
        *KUBECTL.teardown("node-1"),
        KUBECTL.pod_lookup("default", "web-0"),
        KUBECTL.pod_select("default", "app=web,tier in (a,b)"),
        KUBECTL.pod_peer_index("default", "web-0"),
    ]
    plan = build(KUBECTL, ["node-1"], Limits(duration_s=30))
    steps += [plan.nodes[0].capture, plan.nodes[0].inventory, stop_step(KUBECTL, "node-1", 4242, sudo=False)]
    global_help = kubectl_help("options")
    checked = 0
    for step in steps:
        sub, flags = flags_of(step.argv)
        help_text = kubectl_help(sub, "--help") + global_help
        known = set(re.findall(r"(?<![\w-])(-[a-z]|--[a-z][a-z-]*)\b", help_text))
        for flag in flags:
            assert flag in known, f"kubectl {sub}: no flag {flag}"
            checked += 1
    assert checked >= 20


DEBUG = KubectlDebug(context="prod", kubeconfig="/tmp/kc")


def test_kubectl_debug_runs_every_node_command_in_a_sysadmin_debugging_pod() -> None:
    plan = build(DEBUG, ["node-1"], Limits(duration_s=30), "tcp port 80")
    node = plan.nodes[0]
    assert node.setup == () and node.teardown == ()  # kubectl debug makes (and names) its own pods
    stop = stop_step(DEBUG, "node-1", 4242, sudo=False)
    for step in (node.inventory, node.capture, stop):
        assert step.argv[:12] == ("kubectl", "--kubeconfig", "/tmp/kc", "--context", "prod", "debug", "node/node-1",
                                  "--profile=sysadmin", f"--image={DEBUG.image}", "--attach", "--quiet", "--")
        assert step.argv[12:16] == ("sh", "-c", 'sleep 3; exec "$@"', "cniscope-attach")  # output from attach on
    assert node.capture.argv[-2:] == ("--", "tcp port 80") and stop.argv[-1] == "4242"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_every_kubectl_debug_flag_exists_in_the_installed_kubectl() -> None:
    plan = build(DEBUG, ["node-1"], Limits(duration_s=30))
    known = set(re.findall(r"(?<![\w-])(-[a-z]|--[a-z][a-z-]*)\b", kubectl_help("debug", "--help") + kubectl_help("options")))
    for step in (plan.nodes[0].capture, plan.nodes[0].inventory, stop_step(DEBUG, "node-1", 1, sudo=False)):
        sub, flags = flags_of(step.argv)
        assert sub == "debug" and set(flags) == {"--kubeconfig", "--context", "--profile", "--image", "--attach", "--quiet"}
        assert set(flags) <= known
    assert "sysadmin" in kubectl_help("debug", "--help")


def test_node_side_commands_are_plain_argument_lists() -> None:
    """What kubectl exec runs: no shell line built from user text (the filter is one argv item)."""
    evil = "port 80 and host 10.0.0.1"
    argv = nodeside.tcpdump_argv(nodeside.TcpdumpSettings(), evil, 90)
    assert argv[:4] == ["sh", "-c", nodeside.START_SCRIPT, "cniscope-capture"]
    assert argv[-1] == evil and argv[-2] == "--"
    assert "$" not in "".join(argv[4:])

"""`cniscope capture`: record on many nodes at once and bring back named pcapng."""

from __future__ import annotations

import json
import secrets
import socket
import sys
from collections.abc import Callable

import click

from cniscope.capture import nodeside, plan, runner, validate
from cniscope.capture.pods import PodTarget, from_kubernetes, from_netns, select
from cniscope.capture.transports import DEFAULT_IMAGE, Kubectl, KubectlDebug, Local, Netns, Ssh, Transport
from cniscope.errors import ExitCode, UsageError
from cniscope.outputs import check_new_dir
from cniscope.terminal import printable

LabTransport = Callable[[str], Transport]  # NAME of `--via lab:NAME` -> its transport


def _transport(via: str, ssh_config: str | None, ssh_options: tuple[str, ...], namespace: str, image: str,
               context: str | None, kubeconfig: str | None, lab_transport: LabTransport) -> Transport:
    kind, _, arg = via.partition(":")
    if kind == "local" and not arg:
        return Local()
    if kind == "ssh" and not arg:
        return Ssh(config=ssh_config, options=tuple(validate.ssh_option(o) for o in ssh_options))
    if kind == "kubectl" and arg in ("", "debug"):
        if not validate.DNS1123_LABEL.match(namespace):
            raise click.BadParameter(f"{namespace!r} is not a namespace name", param_hint="--namespace")
        made = KubectlDebug if arg == "debug" else Kubectl
        return made(namespace=namespace, image=validate.image(image), context=context, kubeconfig=kubeconfig,
                    session=secrets.token_hex(3))
    if kind == "lab" and arg:
        try:
            return lab_transport(arg)
        except UsageError as exc:
            raise click.BadParameter(str(exc), param_hint="--via") from exc
    if kind == "netns" and arg:
        if not validate.LAB_NAME.match(arg.rstrip("-")):
            raise click.BadParameter(f"{arg!r} is not a namespace prefix", param_hint="--via")
        return Netns(prefix=arg)
    raise click.BadParameter(f"{via!r}: expected local, ssh, kubectl, kubectl:debug, lab:NAME or netns:PREFIX", param_hint="--via")


def _nodes(texts: tuple[str, ...], transport: Transport) -> list[str]:
    nodes = [name.strip() for text in texts for name in text.split(",") if name.strip()]
    check = validate.kube_node_name if isinstance(transport, Kubectl) else validate.node_name
    return [check(node) for node in nodes]


def _pods(refs: tuple[str, ...], selector: str | None, pod_namespace: str, transport: Transport) -> list[PodTarget]:
    parsed = [validate.pod_ref(ref) for ref in refs]
    if isinstance(transport, Netns):
        if selector:
            raise click.UsageError("--selector needs Kubernetes (--via kubectl, ssh or local); name lab pods with --pod")
        return [from_netns(transport.prefix, ns, name) for ns, name in parsed]
    kubectl = transport if isinstance(transport, Kubectl) else Kubectl()
    if selector:
        parsed += [ref for ref in select(kubectl, pod_namespace, selector) if ref not in parsed]
    return [from_kubernetes(kubectl, ns, name) for ns, name in parsed]


def command(lab_transport: LabTransport) -> click.Command:
    """`cniscope capture`. `--via lab:NAME` is the lab's to resolve (cniscope.lab.record.lab_transport, joined in
    cniscope.commands.capture): the lab records through this package, so this package never imports the lab."""

    @click.command("capture")
    @click.option("--nodes", "node_texts", multiple=True, metavar="A,B,...", help="Nodes to record on (ssh: host aliases or user@host).")
    @click.option("--via", default="local", show_default=True, metavar="local|ssh|kubectl|kubectl:debug|lab:NAME|netns:PREFIX",
                  help="How to reach the nodes. kubectl: a capture pod of ours per node, deleted at the end; kubectl:debug: "
                       "kubectl debug node/NAME --profile=sysadmin for every command (its pods stay, as kubectl debug leaves them).")
    @click.option("--filter", "bpf", metavar="BPF", help="tcpdump filter expression (one argument, never through a shell).")
    @click.option("--duration", type=click.FloatRange(min=0.1), default=plan.DEFAULT_DURATION_S, show_default=True, help="Seconds.")
    @click.option("--count", type=click.IntRange(min=1), help="Stop each node after N packets (still bounded by --duration).")
    @click.option("--max-size", type=click.FloatRange(min=0.001), default=plan.DEFAULT_MAX_SIZE_MB, show_default=True,
                  help="MB per node; the first node to reach it stops all.")
    @click.option("--pod", "pod_refs", multiple=True, metavar="NS/NAME", help="Capture on this pod's host side and its node's NIC.")
    @click.option("--selector", metavar="LABELS", help="Also every pod matching this label selector (kubectl get pods -l).")
    @click.option("--pod-namespace", default="default", show_default=True, help="Namespace searched by --selector.")
    @click.option("-o", "--output", type=click.Path(file_okay=False), help="Directory for <node>.pcapng, merged.pcapng, manifest.json.")
    @click.option("--dry-run", is_flag=True, help="Print the commands for every node and stop.")
    @click.option("--json", "as_json", is_flag=True,
                  help="Print the manifest (or with --dry-run the plan, every command as an argument list) as JSON on standard output.")
    @click.option("--ssh-config", type=click.Path(dir_okay=False), help="ssh -F FILE (default: your ~/.ssh/config).")
    @click.option("--ssh-option", "ssh_options", multiple=True, metavar="KEY=VALUE", help="ssh -o KEY=VALUE (repeatable).")
    @click.option("--namespace", default="default", show_default=True, help="kubectl: namespace of the capture pods.")
    @click.option("--image", default=DEFAULT_IMAGE, show_default=True, help="kubectl: image with tcpdump, ip, timeout.")
    @click.option("--context", help="kubectl --context.")
    @click.option("--kubeconfig", type=click.Path(dir_okay=False), help="kubectl --kubeconfig.")
    @click.option("--buffer", "buffer_kib", type=click.IntRange(min=1), default=nodeside.TcpdumpSettings.buffer_kib, show_default=True,
                  help="tcpdump -B, KiB.")
    @click.option("--snaplen", type=click.IntRange(min=64, max=262144), default=nodeside.TcpdumpSettings.snaplen, show_default=True)
    @click.option("--immediate", is_flag=True,
                  help="tcpdump --immediate-mode: no 1.3 s wait at stop, but a ring of one slot per snaplen that drops bursts.")
    @click.option("--force", is_flag=True, help="Write into -o DIR even when it holds files (an earlier capture is replaced).")
    @click.option("--keep-going", is_flag=True, help="Record on the nodes that can be reached, leaving out the others "
                  "(exit 5 all the same, naming them).")
    def capture(
        node_texts: tuple[str, ...], via: str, bpf: str | None, duration: float, count: int | None, max_size: float,
        pod_refs: tuple[str, ...], selector: str | None, pod_namespace: str, output: str | None, dry_run: bool, as_json: bool,
        ssh_config: str | None, ssh_options: tuple[str, ...],
        namespace: str, image: str, context: str | None, kubeconfig: str | None, buffer_kib: int, snaplen: int, immediate: bool,
        force: bool, keep_going: bool,
    ) -> int:
        """Record on every node at once; write one pcapng per node (real interface names), a merged one and a manifest."""
        transport = _transport(via, ssh_config, ssh_options, namespace, image, context, kubeconfig, lab_transport)
        nodes = _nodes(node_texts, transport)
        if bpf is not None:
            bpf = validate.bpf_filter(bpf)
        for ref in pod_refs:
            validate.pod_ref(ref)
        if selector is not None:
            selector = validate.selector(selector)
            if not validate.DNS1123_LABEL.match(pod_namespace):
                raise click.BadParameter(f"{pod_namespace!r} is not a namespace name", param_hint="--pod-namespace")
        if isinstance(transport, Local) and not nodes:
            nodes = [socket.gethostname()]
        if not nodes and not pod_refs and not selector:
            raise click.UsageError("give --nodes A,B,..., --pod NS/NAME or --selector LABELS")
        limits = plan.Limits(duration_s=duration, count=count, max_size_mb=max_size)
        settings = nodeside.TcpdumpSettings(snaplen=snaplen, buffer_kib=buffer_kib, immediate=immediate, count=count)
        if dry_run:
            pods = [validate.pod_ref(ref) for ref in pod_refs]
            planned = plan.build(transport, nodes, limits, bpf, settings, pods)
            click.echo(json.dumps(planned.to_dict(), indent=1) if as_json else planned.render())
            if selector:
                click.echo(f"pods matching {selector!r} in {pod_namespace}: found at run time with kubectl get pods -l")
            return ExitCode.OK
        if not output:
            raise click.UsageError("give -o DIR (or --dry-run)")
        check_new_dir(output, force)
        targets = _pods(pod_refs, selector, pod_namespace, transport)
        for target in targets:
            if target.node not in [n.rpartition("@")[2] for n in nodes]:
                nodes.append(target.node)
        try:
            the_plan = plan.build(transport, nodes, limits, bpf, settings, [(t.namespace, t.name) for t in targets])
        except ValueError as exc:
            raise click.UsageError(str(exc)) from exc
        manifest = runner.run(the_plan, output, targets, progress=lambda text: click.echo(printable(text), err=True),
                              argv=sys.argv, force=force, keep_going=keep_going)
        for line in runner.summary_lines(manifest):
            click.echo(printable(line), err=True)
        if as_json:
            click.echo(json.dumps(manifest, indent=1, sort_keys=True))
        failed = runner.failed_nodes(manifest)
        if failed:
            click.echo(printable(f"error: the capture failed on {'; '.join(failed)}; what was recorded is in {output}"), err=True)
            return ExitCode.ENVIRONMENT
        return ExitCode.OK

    return capture

"""`cniscope lab ...`: build, use, break and remove lab clusters."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from cniscope.lab import state as lab_state
from cniscope.lab.builders import plan_lab
from cniscope.lab.naming import check_name
from cniscope.lab.faults import KINDS, parse_fault, plan_fault
from cniscope.lab.plan import render_plan
from cniscope.lab.spec import MODELS, default_spec, load_spec
from cniscope.outputs import check_new_dir


def _cli_owner() -> int:
    """The lab outlives `lab up`: it belongs to the shell that ran it (past sudo), reaped when that shell is gone."""
    parent = os.getppid()
    try:
        if Path(f"/proc/{parent}/comm").read_text().strip() == "sudo":
            return int(Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ValueError):
        return parent
    return parent


@click.group("lab")
def lab_group() -> None:
    """Lab clusters of network models, built from network namespaces (needs root)."""


@lab_group.command("up")
@click.argument("model", type=click.Choice(list(MODELS)))
@click.option("--nodes", type=int, default=3, show_default=True, help="Nodes of the default cluster.")
@click.option("--name", help="Lab name (default: the model's name).")
@click.option("--spec", "spec_file", type=click.Path(dir_okay=False), help="A YAML cluster spec instead of the default.")
@click.option("--dry-run", is_flag=True, help="Print the plan's commands; change nothing.")
def up(model: str, nodes: int, name: str | None, spec_file: str | None, dry_run: bool) -> None:
    """Build a lab cluster of MODEL."""
    from cniscope.lab import kernel

    if name is not None:
        check_name(name)
    spec = load_spec(spec_file, name=name) if spec_file else default_spec(model, nodes, name)
    if spec_file and spec.model != model:
        raise click.UsageError(f"{spec_file} describes a {spec.model} cluster, not {model}")
    if dry_run:
        kernel.require_buildable(spec.model)
        click.echo(render_plan(plan_lab(spec)), nl=False)
        return
    from cniscope.lab.cluster import Lab

    lab = Lab.up(spec, owner=_cli_owner())
    bgp = f", routes converged in {lab.state.converge_seconds:.2f} s" if lab.state.converge_seconds else ""
    click.echo(f"lab {spec.name} ({spec.model}) up in {lab.state.up_seconds:.2f} s{bgp}")
    for node in spec.nodes:
        pods = ", ".join(f"{p.name} {p.ip}" for p in spec.pods_on(node.name))
        click.echo(f"  {node.name} {node.ip} pods {node.pod_cidr}: {pods or '-'}")
    for svc in spec.services:
        port = f" NodePort {svc.node_port}" if svc.node_port else ""
        click.echo(f"  service {svc.name} {svc.cluster_ip}:{svc.port}{port} -> {', '.join(svc.pods)}")


@lab_group.command("down")
@click.argument("name")
def down(name: str) -> None:
    """Remove lab NAME: its processes, then its namespaces."""
    from cniscope.lab.cluster import Lab

    Lab.open(name).down()
    click.echo(f"lab {name} removed")


@lab_group.command("list")
def list_command() -> None:
    """Labs on this machine."""
    for state in lab_state.list_labs():
        owner = "alive" if lab_state.owner_alive(state) else "gone (lab reap removes it)"
        if lab_state.abandoned(state):
            owner += "; incomplete: lab up died while building it (lab reap removes it)"
        elif state.builder is not None:
            owner += "; being built"
        click.echo(f"{state.name}\t{state.spec.model}\t{len(state.spec.nodes)} nodes\towner {state.owner} {owner}")


@lab_group.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("who")
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--timeout", type=float, default=60, show_default=True)
def exec_command(name: str, who: str, argv: tuple[str, ...], timeout: float) -> None:
    """Run ARGV inside node or pod WHO of lab NAME (use -- before ARGV)."""
    from cniscope.lab.cluster import Lab

    result = Lab.open(name).exec(who, list(argv), timeout=timeout)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    sys.exit(result.returncode)


@lab_group.command("curl")
@click.argument("name")
@click.argument("source")
@click.argument("target")
@click.option("--path", default="/", show_default=True)
@click.option("--max-time", type=float, default=5, show_default=True)
def curl(name: str, source: str, target: str, path: str, max_time: float) -> None:
    """HTTP GET from SOURCE (node or pod) to TARGET (pod, service, node[:port], IP[:port])."""
    from cniscope.lab.cluster import Lab

    result = Lab.open(name).curl(source, target, path, max_time)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    sys.exit(result.returncode)


@lab_group.command("capture", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("action", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--nodes", help="Comma-separated nodes (default: all).")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Directory for NODE.pcapng, merged.pcapng, manifest.json and cluster.yaml.")
@click.option("--timeout", type=float, default=60, show_default=True, help="Bound on the action.")
@click.option("--filter", "bpf", help="tcpdump filter expression (default: everything).")
@click.option("--force", is_flag=True, help="Write into -o DIR even when it holds files (same names are replaced).")
def capture_command(name: str, action: tuple[str, ...], nodes: str | None, output: str, timeout: float, bpf: str | None,
                    force: bool) -> None:
    """Capture on the nodes of lab NAME while ACTION (WHO CMD..., after --) runs inside node or pod WHO."""
    from cniscope.capture import validate
    from cniscope.lab.capture import capture
    from cniscope.lab.cluster import Lab
    from cniscope.lab.inventory import write_inventory

    check_new_dir(output, force)
    lab = Lab.open(name)
    chosen = nodes.split(",") if nodes else [n.name for n in lab.spec.nodes]
    for node in chosen:
        lab.spec.node(node)
    if len(action) < 2:
        raise click.UsageError("ACTION is WHO CMD...: a node or pod of the lab, then the command")
    bpf = validate.bpf_filter(bpf) if bpf else None
    results, result = capture(lab, chosen, output, lambda: lab.exec(action[0], list(action[1:]), timeout=timeout), bpf, force)
    write_inventory(lab.spec, Path(output) / "cluster.yaml")
    sys.stdout.write(result.stdout)
    for item in results:
        click.echo(f"{item.path}: {item.packets} packets", err=True)
        for warning in item.warnings:
            click.echo(f"warning: {warning}", err=True)
    sys.exit(result.returncode)


@lab_group.command("fault", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("kind", type=click.Choice(list(KINDS)))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--dry-run", is_flag=True, help="Print the fault's commands; change nothing.")
def fault(name: str, kind: str, args: tuple[str, ...], dry_run: bool) -> None:
    """Inject a fault into lab NAME; ARGS are KEY=VALUE (drop node= iface= [dir=in|out], mtu node= iface= mtu=, ...)."""
    from cniscope.lab.cluster import Lab

    item = parse_fault(kind, list(args))
    if dry_run:
        click.echo(render_plan(plan_fault(lab_state.load(name).spec, item)), nl=False)
        return
    steps = Lab.open(name).fault(item)
    click.echo(f"fault {kind} injected ({KINDS[kind].breaks}):\n" + render_plan(steps), nl=False)


@lab_group.command("record")
@click.argument("model", type=click.Choice(list(MODELS)))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False))
@click.option("--nodes", type=int, default=3, show_default=True)
def record_command(model: str, output: str, nodes: int) -> None:
    """Build a MODEL lab, record every named scenario (same-node, cross-node, cluster-ip, node-port), remove it."""
    from cniscope.lab.cluster import Lab
    from cniscope.lab.scenarios import SCENARIOS, record

    spec = default_spec(model, nodes, name=f"rec{os.getpid()}")
    with Lab.up(spec) as lab:
        for scenario in SCENARIOS:
            recorded = record(lab, scenario, output)
            status = "ok" if recorded.ok else "FAILED"
            click.echo(f"{scenario}: {status}, {sum(c.packets for c in recorded.captures)} packets in {Path(output) / scenario}")


@lab_group.command("reap")
def reap() -> None:
    """Remove labs whose owner process is gone, and labs whose `lab up` died before they were complete."""
    for name in lab_state.reap():
        click.echo(f"reaped lab {name}")

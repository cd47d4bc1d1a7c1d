"""`cniscope lab ...`: build, use, break and remove lab clusters."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from cniscope.capture import validate
from cniscope.lab import kernel
from cniscope.lab import state as lab_state
from cniscope.lab.builders import plan_lab
from cniscope.lab.cluster import Lab
from cniscope.lab.cluster_yaml import write_inventory
from cniscope.lab.faults import KINDS, parse_fault, plan_fault, usage
from cniscope.lab.naming import check_name
from cniscope.lab.record import capture
from cniscope.lab.scenarios import SCENARIOS, record
from cniscope.lab.spec import MODELS, default_spec, load_spec
from cniscope.lab.steps import render_plan
from cniscope.outputs import check_new_dir


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
    if name is not None:
        check_name(name)
    spec = load_spec(spec_file, name=name) if spec_file else default_spec(model, nodes, name)
    if spec_file and spec.model != model:
        raise click.UsageError(f"{spec_file} describes a {spec.model} cluster, not {model}")
    if dry_run:
        kernel.require_buildable(spec.model)
        click.echo(render_plan(plan_lab(spec)), nl=False)
        return
    lab = Lab.up(spec, keep=True)  # the lab outlives this command: `lab down` removes it
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
    Lab.open(name).down()
    click.echo(f"lab {name} removed")


@lab_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: {\"labs\": [{name, model, nodes, kept, owner, owner_alive}]}.")
def list_command(as_json: bool) -> None:
    """Labs on this machine, and what keeps each alive."""
    if as_json:
        labs = [{"name": s.name, "model": s.spec.model, "nodes": [n.name for n in s.spec.nodes], "kept": s.kept,
                 "owner": s.owner, "owner_alive": lab_state.owner_alive(s)} for s in lab_state.list_labs()]
        click.echo(json.dumps({"labs": labs}, indent=1))
        return
    for state in lab_state.list_labs():
        click.echo(f"{state.name}\t{state.spec.model}\t{len(state.spec.nodes)} nodes\t{lab_state.ownership(state)}")


@lab_group.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("who")
@click.argument("argv", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--timeout", type=float, default=60, show_default=True)
def exec_command(name: str, who: str, argv: tuple[str, ...], timeout: float) -> None:
    """Run ARGV inside node or pod WHO of lab NAME (use -- before ARGV)."""
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
    result = Lab.open(name).curl(source, target, path, max_time)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    sys.exit(result.returncode)


@lab_group.command("capture", context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("action", nargs=-1, required=True, type=click.UNPROCESSED)
@click.option("--nodes", help="Comma-separated nodes (default: all).")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Directory for NODE.pcapng, merged.pcapng, manifest.json and cluster.yaml.")
@click.option("--duration", type=click.FloatRange(min=0.1), default=60, show_default=True,
              help="Seconds: bound on the action (as `cniscope capture --duration`).")
@click.option("--timeout", "old_duration", type=click.FloatRange(min=0.1), hidden=True, help="The old name of --duration.")
@click.option("--filter", "bpf", help="tcpdump filter expression (default: everything).")
@click.option("--force", is_flag=True, help="Write into -o DIR even when it holds files (same names are replaced).")
def capture_command(name: str, action: tuple[str, ...], nodes: str | None, output: str, duration: float,
                    old_duration: float | None, bpf: str | None, force: bool) -> None:
    """Capture on the nodes of lab NAME while ACTION (WHO CMD..., after --) runs inside node or pod WHO."""
    check_new_dir(output, force)
    duration = old_duration if old_duration is not None else duration
    lab = Lab.open(name)
    chosen = nodes.split(",") if nodes else [n.name for n in lab.spec.nodes]
    for node in chosen:
        lab.spec.node(node)
    if len(action) < 2:
        raise click.UsageError("ACTION is WHO CMD...: a node or pod of the lab, then the command")
    bpf = validate.bpf_filter(bpf) if bpf else None
    results, result = capture(lab, chosen, output, lambda: lab.exec(action[0], list(action[1:]), timeout=duration), bpf, force)
    write_inventory(lab.spec, Path(output) / "cluster.yaml")
    sys.stdout.write(result.stdout)
    for item in results:
        click.echo(f"{item.path}: {item.packets} packets", err=True)
        for warning in item.warnings:
            click.echo(f"warning: {warning}", err=True)
    sys.exit(result.returncode)


FAULT_HELP = "\n\n".join([
    "Inject a fault into lab NAME. KIND and its ARGS (KEY=VALUE), and what each breaks:",
    "\b\n" + "\n".join(f"{usage(name)}\n    {kind.breaks}" for name, kind in KINDS.items()),
    "Example: cniscope lab fault demo drop node=node2 iface=eth0 dir=in",
])


@lab_group.command("fault", context_settings={"ignore_unknown_options": True}, help=FAULT_HELP)
@click.argument("name")
@click.argument("kind", type=click.Choice(list(KINDS)), metavar="KIND")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--dry-run", is_flag=True, help="Print the fault's commands; change nothing.")
def fault(name: str, kind: str, args: tuple[str, ...], dry_run: bool) -> None:
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

"""A running lab: bring it up from a spec, run things in it, break it, take it down.

    lab = Lab.up(default_spec("kube-router", name="t1"))
    lab.curl("client1", "web3").stdout      # 'web3 on node3\\n'
    lab.fault(Fault("drop", {"node": "node3", "iface": "eth0"}))
    lab.down()
"""

from __future__ import annotations

import ipaddress
import os
import time
from dataclasses import replace

from cniscope import host
from cniscope.errors import EnvironmentProblem, InputError
from cniscope.host import Command, Done
from cniscope.lab import executor, kernel
from cniscope.lab import state as lab_state
from cniscope.lab.builders import plan_lab
from cniscope.lab.faults import plan_fault
from cniscope.lab.naming import UNDERLAY, ns_name
from cniscope.lab.spec import Fault, LabSpec
from cniscope.lab.steps import Step, WaitRoutes


class Lab:
    def __init__(self, state: lab_state.LabState) -> None:
        self.state = state

    @property
    def spec(self) -> LabSpec:
        return self.state.spec

    @property
    def name(self) -> str:
        return self.spec.name

    @classmethod
    def up(cls, spec: LabSpec, owner: int | None = None, keep: bool = False) -> Lab:
        """Build the lab; on any failure remove what was built and re-raise. `keep`: once built, the lab outlives
        its owner (until `lab down`); else the reaper removes it when the owner is gone."""
        kernel.require_root()
        kernel.require_tools()
        kernel.require_buildable(spec.model)
        steps = plan_lab(replace(spec, faults=()))
        fault_steps = _fault_steps(spec)  # checked before anything is built
        owner = owner if owner is not None else os.getpid()
        members = [UNDERLAY, *(n.name for n in spec.nodes), *(p.name for p in spec.pods)]
        state = lab_state.LabState(spec, owner, lab_state.process_start(owner), [ns_name(spec.name, m) for m in members],
                                   builder=os.getpid(), builder_start=lab_state.process_start(os.getpid()))
        try:
            state.dir.parent.mkdir(parents=True, exist_ok=True)
            state.dir.mkdir()  # claims the name atomically
        except FileExistsError as exc:
            raise InputError(f"a lab named {spec.name!r} exists already ({state.dir}): cniscope lab down {spec.name}, "
                             "or pick --name") from exc
        taken = [n for n in state.namespaces if (lab_state.NETNS_DIR / n).exists()]
        if taken:
            state.dir.rmdir()
            raise InputError(f"namespaces {', '.join(taken)} exist already but belong to no lab: pick another --name")
        state.save()
        started = time.monotonic()
        try:
            state.pids = executor.apply([s for s in steps if not isinstance(s, WaitRoutes)])
            built = time.monotonic()
            executor.apply([s for s in steps if isinstance(s, WaitRoutes)])
            converged = time.monotonic()
            executor.apply(fault_steps)
        except BaseException:
            lab_state.teardown(state)
            raise
        state.up_seconds = round(built - started, 4)
        state.converge_seconds = round(converged - built, 4)
        state.builder = state.builder_start = None  # complete
        state.kept = keep
        state.save()
        return cls(state)

    @classmethod
    def open(cls, name: str) -> Lab:
        return cls(lab_state.load(name))

    def down(self) -> None:
        problems = lab_state.teardown(self.state)
        if problems:
            raise EnvironmentProblem(f"lab {self.name}: teardown left: {'; '.join(problems)}")

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # --- inside the lab -----------------------------------------------------------------------

    def ns(self, who: str) -> str:
        """Namespace of a node, pod or 'underlay' of this lab."""
        if who != UNDERLAY and self.spec.pod(who) is None:
            self.spec.node(who)  # raises naming the nodes
        return ns_name(self.name, who)

    def exec(self, who: str, argv: list[str], timeout: float = 30, check: bool = False) -> Done:
        """Run argv inside a node or pod (argument list, no shell); bounded by `timeout`."""
        return host.run(Command(("ip", "netns", "exec", self.ns(who), *argv), f"{' '.join(argv)} in {who}"),
                        timeout=timeout, check=check)

    def address(self, target: str) -> str:
        """`pod`, `service`, `node[:port]` or an IPv4 address [:port] -> host[:port] to curl.

        A node without a port means its first NodePort.
        """
        name, _, port = target.partition(":")
        pod, svc = self.spec.pod(name), self.spec.service(name)
        if pod is not None:
            return f"{pod.ip}:{port or 80}"
        if svc is not None:
            return f"{svc.cluster_ip}:{port or svc.port}"
        if name in {n.name for n in self.spec.nodes}:
            if not port:
                node_ports = [s.node_port for s in self.spec.services if s.node_port is not None]
                if not node_ports:
                    raise InputError(f"node {name}: give a port (no service has a NodePort)")
                port = str(node_ports[0])
            return f"{self.spec.node(name).ip}:{port}"
        try:
            ipaddress.IPv4Address(name)
        except ValueError as exc:
            raise InputError(f"{target!r} is no pod, service or node of lab {self.name}, nor an IPv4 address") from exc
        return f"{name}:{port or 80}"

    def curl(self, source: str, target: str, path: str = "/", max_time: float = 5) -> Done:
        """HTTP GET from a node or pod; curl's own --max-time bounds it."""
        url = f"http://{self.address(target)}{path}"
        return self.exec(source, ["curl", "-sS", "--max-time", f"{max_time:g}", "-o", "-", url], timeout=max_time + 5)

    def fault(self, fault: Fault) -> list[Step]:
        """Inject a fault now; it is recorded in the lab's spec."""
        steps = plan_fault(self.spec, fault)
        executor.apply(steps)
        self.state.spec = replace(self.spec, faults=(*self.spec.faults, fault))
        self.state.save()
        return steps


def _fault_steps(spec: LabSpec) -> list[Step]:
    return [step for fault in spec.faults for step in plan_fault(spec, fault)]

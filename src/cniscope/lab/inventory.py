"""The cluster inventory of a lab, written next to its captures so analysis can name things."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cniscope.lab.builders import CALICO_GATEWAY
from cniscope.lab.naming import cali_name, veth_name
from cniscope.lab.spec import CLUSTER_CIDR, SERVICE_CIDR, LabSpec


def cluster_inventory(spec: LabSpec) -> dict[str, Any]:
    calico = spec.model.startswith("calico")
    return {
        "cluster": spec.name,
        "model": spec.model,
        "cluster_cidr": CLUSTER_CIDR,
        "service_cidr": SERVICE_CIDR,
        "nodes": [{"name": n.name, "addresses": [n.ip], "pod_cidr": n.pod_cidr} for n in spec.nodes],
        "pods": [
            {
                "name": p.name,
                "namespace": "default",
                "ip": p.ip,
                "node": p.node,
                "host_iface": cali_name(p.name) if calico else veth_name(p.name),
                **({"gateway": CALICO_GATEWAY} if calico else {}),
            }
            for p in spec.pods
        ],
        "services": [
            {
                "name": s.name,
                "namespace": "default",
                "cluster_ip": s.cluster_ip,
                "ports": [{"port": s.port, "target_port": s.target_port, "protocol": "TCP",
                           **({"node_port": s.node_port} if s.node_port is not None else {})}],
                "endpoints": [spec.pod(p).ip for p in s.pods],  # type: ignore[union-attr]
            }
            for s in spec.services
        ],
    }


def write_inventory(spec: LabSpec, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(yaml.safe_dump(cluster_inventory(spec), sort_keys=False))
    return path

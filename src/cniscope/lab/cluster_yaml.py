"""The cluster inventory of a lab, written next to its captures so analysis can name things.

The format is cniscope.inventory's short YAML form (nodes, pods, services).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from cniscope.lab.spec import SERVICE_CIDR, LabSpec


def cluster_inventory(spec: LabSpec) -> dict[str, Any]:
    return {
        "serviceCIDR": SERVICE_CIDR,
        "nodes": [{"name": n.name, "addresses": [n.ip], "podCIDRs": [n.pod_cidr]} for n in spec.nodes],
        "pods": [{"name": p.name, "namespace": "default", "ip": p.ip, "node": p.node} for p in spec.pods],
        "services": [
            {
                "name": s.name,
                "namespace": "default",
                "clusterIP": s.cluster_ip,
                "ports": [{"port": s.port, "targetPort": s.target_port, "protocol": "TCP",
                           **({"nodePort": s.node_port} if s.node_port is not None else {})}],
            }
            for s in spec.services
        ],
    }


def write_inventory(spec: LabSpec, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(yaml.safe_dump(cluster_inventory(spec), sort_keys=False))
    return path

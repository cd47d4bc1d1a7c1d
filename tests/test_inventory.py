"""Cluster inventory: both input forms, lookups, damage; the kubectl fixtures checked against the Kubernetes API models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cniscope.errors import InputError
from cniscope.inventory import load, parse
from tests.k8s_schema import check

DATA = Path(__file__).resolve().parent / "data" / "inventory"
KUBECTL_FIXTURES = sorted(DATA.glob("*.json"))
API_CLASS = {("v1", "Node"): "V1Node", ("v1", "Pod"): "V1Pod", ("v1", "Service"): "V1Service",
             ("discovery.k8s.io/v1", "EndpointSlice"): "V1EndpointSlice"}
@pytest.mark.parametrize("path", KUBECTL_FIXTURES, ids=lambda p: p.name)
def test_kubectl_fixture_follows_the_kubernetes_api_schema(path: Path) -> None:
    import kubernetes.client as k8s

    doc = json.loads(path.read_text())
    assert (doc["apiVersion"], doc["kind"]) == ("v1", "List")
    assert set(doc) == {"apiVersion", "items", "kind", "metadata"}
    kinds = set()
    for i, item in enumerate(doc["items"]):
        name = API_CLASS[(item["apiVersion"], item["kind"])]
        check(item, name, f"items[{i}]")
        getattr(k8s, name).from_dict(item)  # the client's own validation: required fields, types
        kinds.add(item["kind"])
    assert kinds == {"Node", "Pod", "Service", "EndpointSlice"}


def test_the_schema_check_catches_a_misspelt_field() -> None:
    doc = json.loads((DATA / "kube-router-cluster.json").read_text())
    node = doc["items"][0]
    node["spec"]["podCidr"] = node["spec"].pop("podCIDR")
    with pytest.raises(AssertionError, match="podCidr"):
        check(node, "V1Node", "items[0]")


def test_kubectl_list_answers_who_an_address_is() -> None:
    inv = load(str(DATA / "kube-router-cluster.json"))
    assert [n.name for n in inv.nodes] == ["master2", "node3"]
    assert inv.describe("10.244.3.10") == "pod default/nginx-7c5d8bf9f7-x2x4q on node3"
    assert inv.describe("10.96.0.10", 80) == "service default/nginx (10.96.0.10:80)"
    assert inv.describe("192.168.200.23") == "node node3"  # the host-network kube-router pod does not take it
    assert inv.describe("192.168.200.23", 30080) == "node node3, NodePort 30080 of service default/nginx"
    assert inv.describe("10.244.3.200") == "pod address on node3 (pod CIDR)"
    assert inv.describe("203.0.113.9") is None
    assert inv.endpoints[0].service == "default/nginx" and inv.endpoints[0].addresses == ("10.244.3.10",)
    assert inv.pod_cidrs() == ["10.244.1.0/24", "10.244.3.0/24"]


def test_short_yaml_answers_who_an_address_is() -> None:
    inv = load(str(DATA / "seed-node3.yaml"))
    assert inv.describe("10.244.3.10") == "pod default/nginx-7c5 on node3"
    assert inv.describe("10.96.0.10", 80) == "service default/nginx (10.96.0.10:80)"
    assert inv.node_of_pod_address("10.244.3.77").name == "node3"
    assert inv.is_pod_address("10.244.3.10") and not inv.is_pod_address("192.168.200.23")
    assert inv.is_node_address("192.168.200.23")
    assert inv.service_cidrs == ("10.96.0.0/12",)


def test_kubectl_yaml_output_reads_like_json() -> None:
    import yaml

    doc = json.loads((DATA / "kube-router-cluster.json").read_text())
    inv = parse(yaml.safe_dump(doc), "as.yaml")
    assert inv.describe("10.244.3.10") == "pod default/nginx-7c5d8bf9f7-x2x4q on node3"


@pytest.mark.parametrize(("text", "message"), [
    ("nodes: [{name: a, addresses: [300.1.1.1]}]", r"nodes\[0\]: not an IP address"),
    ("nodes: [{addresses: [10.0.0.1]}]", r"nodes\[0\]: 'name' is missing"),
    ("pods: [{name: p, ip: 10.0.0.5}]\nnodez: []", "unknown keys"),
    ("nodes: [{name: a, podCIDR: 10.0.0.0/33}]", "not a CIDR"),
    ("services: [{name: s, clusterIP: 10.96.0.1, ports: [{targetPort: 80}]}]", "needs 'port'"),
    ("- just\n- a list", "expected a kubectl List"),
    ("{\"kind\": \"List\", \"items\": [", "not JSON or YAML"),
    ("{\"kind\": \"List\", \"items\": [{\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {}}]}", "'name' is missing"),
])
def test_bad_inventory_is_an_input_error_naming_the_place(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as err:
        parse(text, "cluster.yaml")
    assert "cluster.yaml" in str(err.value)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        load(str(tmp_path / "absent.yaml"))

"""Kubernetes objects checked against the official API models (the kubernetes python client): every key a field
of its model, with the declared type. For the kubectl fixtures and the manifests the docs give."""

from __future__ import annotations

import datetime

SCALARS = {"str": str, "int": int, "bool": bool, "float": (int, float), "object": object}


def check(value: object, type_name: str, where: str) -> None:
    """Every key must be a field of the official model (kubernetes python client), with the declared type."""
    import kubernetes.client as k8s

    if value is None:
        return
    if type_name in SCALARS:
        assert isinstance(value, SCALARS[type_name]), f"{where}: {value!r} is not {type_name}"
        return
    if type_name in ("datetime", "date"):
        assert isinstance(value, str), where
        datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return
    if type_name.lower().startswith("list["):
        assert isinstance(value, list), f"{where}: not a list"
        for i, item in enumerate(value):
            check(item, type_name[5:-1], f"{where}[{i}]")
        return
    if type_name.lower().startswith(("dict(", "dict[")):
        assert isinstance(value, dict), f"{where}: not a map"
        inner = type_name[5:-1].split(", ", 1)[1]
        for key, item in value.items():
            check(item, inner, f"{where}.{key}")
        return
    cls = getattr(k8s, type_name)
    assert isinstance(value, dict), f"{where}: {type_name} must be an object"
    fields = {json_key: attr for attr, json_key in cls.attribute_map.items()}
    unknown = set(value) - set(fields)
    assert not unknown, f"{where}: {sorted(unknown)} are not fields of {type_name}"
    for key, item in value.items():
        check(item, cls.openapi_types[fields[key]], f"{where}.{key}")

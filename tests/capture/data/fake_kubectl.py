#!/usr/bin/env python3
"""A stand-in for kubectl, for the one thing that cannot run here: a Kubernetes API server.

It understands exactly the commands the kubectl transport issues (create -f -,
wait, exec, delete, get pod) and logs each argv to $FAKE_KUBECTL_STATE/log.jsonl.
"Nodes" are network namespaces $FAKE_KUBECTL_NETNS_PREFIX<nodeName>; `exec` in a
capture pod becomes `ip netns exec` into its node's namespace (hostNetwork),
with the same argv, stdin/stdout/stderr and pid, as kubectl exec streams them.
Pods for `--pod` lookups are listed in $FAKE_KUBECTL_STATE/pods.json.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

STATE = Path(os.environ["FAKE_KUBECTL_STATE"])
PREFIX = os.environ["FAKE_KUBECTL_NETNS_PREFIX"]


def record(argv: list[str]) -> None:
    with open(STATE / "log.jsonl", "a") as log:
        log.write(json.dumps(argv) + "\n")


def main(argv: list[str]) -> int:
    words = argv[:]
    while words and words[0] in ("--kubeconfig", "--context"):
        words = words[2:]
    verb, rest = words[0], words[1:]
    pods = STATE / "capture-pods"
    pods.mkdir(exist_ok=True)
    if verb == "create":  # logged with the pod's name, which came on stdin
        manifest = json.load(sys.stdin)
        record([*argv, f"<stdin: pod {manifest['metadata']['name']}>"])
        (pods / manifest["metadata"]["name"]).write_text(json.dumps(manifest))
        return 0
    record(argv)
    if verb == "wait":
        return 0
    if verb == "delete":
        (pods / rest[3]).unlink(missing_ok=True)
        return 0
    if verb == "get" and rest[0] == "pods":  # get pods -n NS -l key=value -o json
        known = json.loads((STATE / "pods.json").read_text())
        key, _, value = rest[4].partition("=")
        items = [
            {"metadata": {"namespace": ref.split("/")[0], "name": ref.split("/")[1]}}
            for ref, pod in known.items()
            if ref.startswith(rest[2] + "/") and pod.get("labels", {}).get(key) == value
        ]
        print(json.dumps({"kind": "PodList", "items": items}))
        return 0
    if verb == "get":
        known = json.loads((STATE / "pods.json").read_text())
        pod = known.get(f"{rest[2]}/{rest[3]}")
        if pod is None:
            print(f'Error from server (NotFound): pods "{rest[3]}" not found', file=sys.stderr)
            return 1
        print(json.dumps({"spec": {"nodeName": pod["node"]}, "status": {"podIP": pod["ip"]}}))
        return 0
    if verb == "exec":
        namespace, name = rest[1], rest[2]
        command = rest[rest.index("--") + 1 :]
        manifest_path = pods / name
        if manifest_path.exists():
            netns = PREFIX + json.loads(manifest_path.read_text())["spec"]["nodeName"]
        else:
            netns = json.loads((STATE / "pods.json").read_text())[f"{namespace}/{name}"]["netns"]
        os.execvp("ip", ["ip", "netns", "exec", netns, *command])
    print(f"fake kubectl: unsupported {argv}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

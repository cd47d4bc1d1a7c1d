"""`analyze --dask`: on a real scheduler and two worker processes on 127.0.0.1, the report is the local one."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest
import yaml

from cniscope import dask_cluster, parts
from cniscope.errors import InputError
from cniscope.sources import InputSpec
from tests.cli import run
from tests.dask_cluster import SRC, Cluster
from tests.k8s_schema import check
from tests.paths import CORPUS, REPO

CAPTURES = sorted(p for p in CORPUS.iterdir() if p.suffix in (".pcap", ".txt"))
ENV = {**os.environ, "PYTHONPATH": SRC}
BOUND = 600  # seconds any one command may take here, on a shared 2-core machine


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    started = Cluster(tmp_path_factory.mktemp("dask"))
    yield started
    started.stop()


@pytest.fixture(scope="module")
def million(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1M packets of the reference generator (`tcpdump -i any` on a flannel-VXLAN node, snaplen 256): 184 MB."""
    path = tmp_path_factory.mktemp("gen") / "c1m.pcap"
    subprocess.run([sys.executable, str(REPO / "benchmarks" / "gen_capture.py"), "-n", "1000000", "--snaplen", "256",
                    "--pcap", str(path)], check=True, timeout=BOUND)
    return path


@pytest.fixture(scope="module")
def million_local(million: Path) -> str:
    return cniscope("analyze", "--json", str(million)).stdout


def cniscope(*args: str) -> subprocess.CompletedProcess[str]:
    """The command in its own process, bounded in time."""
    return subprocess.run([sys.executable, "-m", "cniscope", *args], check=False, capture_output=True, text=True, env=ENV,
                          timeout=BOUND)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.stem)
def test_a_corpus_capture_gives_the_local_report(cluster: Cluster, capture: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parts, "PART_BYTES", 700)  # pcaps cut into dozens of parts
    local = run("analyze", "--json", "node1=" + str(capture))
    remote = run("analyze", "--json", "--dask", cluster.address, "node1=" + str(capture))
    assert (remote.code, remote.err) == (local.code, local.err)
    assert json.loads(remote.out) == json.loads(local.out) and json.loads(local.out)["packets"] > 0


def test_several_inputs_on_several_nodes(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parts, "PART_BYTES", 2000)
    inputs = [f"node{n}={p}" for n, p in enumerate(CAPTURES[:4])]
    local = run("analyze", "--json", *inputs)
    remote = run("analyze", "--json", "--dask", cluster.address, *inputs)
    assert remote.code == local.code == 0
    assert remote.out == local.out


def test_urls_the_workers_read_through_fsspec(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """`local://` is fsspec's name for the local filesystem: read as any remote URL is (a part's byte range
    fetched alone, a whole input copied to the worker's temporary directory), where the workers can reach it."""
    monkeypatch.setattr(parts, "PART_BYTES", 2000)
    pcap, text = CORPUS / "03-ysaied-pan-cn-ngfw-vxlan6080.pcap", CORPUS / "04-msazure-flannel-vxlan-e.txt"
    local = json.loads(run("analyze", "--json", f"node1={pcap}", f"node2={text}").out)
    remote = run("analyze", "--json", "--dask", cluster.address, f"node1=local://{pcap}", f"node2=local://{text}")
    assert remote.code == 0, remote.err
    document = json.loads(remote.out)
    assert [i["name"] for i in document["inputs"]] == [f"local://{pcap}", f"local://{text}"]
    for doc in (local, document):
        for info in doc["inputs"]:
            info.pop("name")
            info["warnings"] = [w.split(":", 1)[1] for w in info["warnings"]]  # each starts with the input's name
    assert document == local


def test_a_million_packets_give_the_local_report(cluster: Cluster, million: Path, million_local: str) -> None:
    remote = cniscope("analyze", "--json", "--dask", cluster.address, str(million))
    assert remote.returncode == 0, remote.stderr
    assert json.loads(remote.stdout)["packets"] == 1_000_000
    assert remote.stdout == million_local


def test_a_worker_killed_mid_run_changes_nothing(tmp_path: Path, million: Path, million_local: str) -> None:
    cluster = Cluster(tmp_path / "cluster")
    try:
        with cluster.client() as client:
            proc = subprocess.Popen([sys.executable, "-m", "cniscope", "analyze", "--json", "--dask", cluster.address, str(million)],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
            try:
                victim, key = _busy_worker(client)
                os.kill(cluster.worker_pid(victim), signal.SIGKILL)
                out, err = proc.communicate(timeout=BOUND)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
            ran = client.run_on_scheduler(_times_processed, key=key)
            workers = client.scheduler_info()["workers"]
        assert proc.returncode == 0, err
        assert victim not in workers and len(workers) == 1  # it died for good
        assert ran >= 2  # the part it was reading was read again elsewhere
        assert out == million_local
    finally:
        cluster.stop()


def _busy_worker(client, deadline: float = BOUND) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """A worker reading one of cniscope's parts, and that part's task key."""
    until = time.monotonic() + deadline
    while time.monotonic() < until:
        for worker, keys in client.processing().items():
            mine = [k for k in keys if str(k).startswith("cniscope-part-")]
            if mine:
                return worker, str(mine[0])
        time.sleep(0.05)
    raise AssertionError("no part was ever processing")


def _times_processed(dask_scheduler, key: str) -> int:  # type: ignore[no-untyped-def]
    """How often the scheduler sent task `key` to a worker (its transition log)."""
    return sum(1 for entry in dask_scheduler.story(key) if entry[0] == key and entry[2] == "processing")


def test_an_unreachable_scheduler_is_exit_5_at_once(tmp_path: Path) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    ran = cniscope("analyze", "--dask", address, str(CAPTURES[0]))
    assert ran.returncode == 5
    assert f"cannot reach the Dask scheduler at {address}" in ran.stderr and "Traceback" not in ran.stderr


@pytest.mark.parametrize("address", ["tcp://", "scheduler", "tcp://127.0.0.1:http"])
def test_a_bad_address_is_a_usage_error(address: str) -> None:
    ran = run("analyze", "--dask", address, str(CAPTURES[0]))
    assert ran.code == 2 and f"--dask {address}: not a scheduler address" in ran.err


def test_something_else_listening_there_is_exit_5() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        answer = threading.Thread(target=_web_server_answer, args=(server,), daemon=True)
        answer.start()
        ran = cniscope("analyze", "--dask", f"tcp://127.0.0.1:{server.getsockname()[1]}", str(CAPTURES[0]))
        answer.join(timeout=BOUND)
    assert ran.returncode == 5, ran.stderr
    assert "no Dask scheduler answers at tcp://127.0.0.1:" in ran.stderr and "Traceback" not in ran.stderr


def _web_server_answer(server: socket.socket) -> None:
    """What a web server says to a client that sends it something else."""
    server.settimeout(BOUND)
    conn, _ = server.accept()
    with conn:
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nContent-Length: 0\r\n\r\n" + bytes(range(256)))
        conn.settimeout(BOUND)
        try:
            while conn.recv(65536):
                pass
        except OSError:
            pass


def test_a_part_the_workers_cannot_read_names_its_input_and_byte_range(cluster: Cluster) -> None:
    memory = fsspec.filesystem("memory")  # this process's own memory: the client sees the file, the workers do not
    pcap = CORPUS / "03-ysaied-pan-cn-ngfw-vxlan6080.pcap"
    memory.pipe("/dask-test/c.pcap", pcap.read_bytes())
    try:
        with cluster.client() as client, pytest.raises(InputError) as raised:
            dask_cluster.read(client, [InputSpec("memory://dask-test/c.pcap")], part_bytes=1000)
    finally:
        memory.rm("/dask-test", recursive=True)
    assert str(raised.value).startswith("reading memory://dask-test/c.pcap bytes 24-1024 on the cluster: ")


def test_without_dask_nothing_imports_it() -> None:
    probe = ("import io, sys, contextlib\n"
             "from cniscope.cli import main\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n"
             "    code = main(sys.argv[1:])\n"
             "print(code, sorted({m.split('.')[0] for m in sys.modules} & {'dask', 'distributed'}))\n")
    capture = str(CORPUS / "01-ysaied-pan-cn-calico-vxlan.pcap")
    local = subprocess.run([sys.executable, "-c", probe, "analyze", "--json", capture], check=False, capture_output=True, text=True,
                           env=ENV, timeout=BOUND)
    assert local.stdout.split("\n")[-2] == "0 []"
    dask = subprocess.run([sys.executable, "-c", probe, "analyze", "--json", "--dask", f"tcp://127.0.0.1:{free_port()}", capture],
                          check=False, capture_output=True, text=True, env=ENV, timeout=BOUND)
    assert dask.stdout.split("\n")[-2] == "5 ['dask', 'distributed']"  # the probe sees it when it is there


def test_the_daskcluster_manifest_of_the_docs_holds_a_pod_spec_and_a_service_spec() -> None:
    import kubernetes.client as k8s

    text = (REPO / "docs" / "scale.md").read_text()
    block = next(b for b in text.split("```yaml\n")[1:] if "kind: DaskCluster" in b).split("```")[0]
    manifest = yaml.safe_load(block)
    assert (manifest["apiVersion"], manifest["kind"]) == ("kubernetes.dask.org/v1", "DaskCluster")
    spec = manifest["spec"]
    for where, pod in (("worker", spec["worker"]["spec"]), ("scheduler", spec["scheduler"]["spec"])):
        check(pod, "V1PodSpec", where)
        k8s.V1PodSpec(**{attr: pod.get(key) for attr, key in k8s.V1PodSpec.attribute_map.items()})  # required fields
    check(spec["scheduler"]["service"], "V1ServiceSpec", "scheduler.service")
    worker = spec["worker"]["spec"]["containers"][0]
    assert worker["args"][0] == "dask-worker" and spec["scheduler"]["spec"]["containers"][0]["args"] == ["dask-scheduler"]
    assert "cniscope[dask]" in next(e["value"] for e in worker["env"] if e["name"] == "EXTRA_PIP_PACKAGES")
    mounts = {m["name"] for m in worker["volumeMounts"]}
    assert mounts <= {v["name"] for v in spec["worker"]["spec"]["volumes"]}
    ports = {p["name"] for c in spec["scheduler"]["spec"]["containers"] for p in c["ports"]}
    assert {p["targetPort"] for p in spec["scheduler"]["service"]["ports"]} <= ports

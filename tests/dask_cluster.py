"""A real Dask cluster on 127.0.0.1 for the tests: one scheduler and worker processes, started as a user would
(`dask scheduler`, `dask worker`), bounded in time, stopped by pid.

Workers run without a nanny, so a worker killed by a test stays dead and its tasks go to the others.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cniscope
from tests.paths import REPO

SRC = str(Path(cniscope.__file__).resolve().parent.parent)  # the cniscope under test, for the workers too
START_TIMEOUT = 60.0


class Cluster:
    def __init__(self, workdir: Path, workers: int = 2) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[bytes]] = []
        workdir.mkdir(parents=True, exist_ok=True)
        info = workdir / "scheduler.json"
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join((SRC, str(REPO)))}  # tests' functions run there too
        try:
            self.scheduler = self._start("scheduler", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
                                         "--no-dashboard", "--scheduler-file", str(info))
            self.address = self._wait_for_address(info)
            self.workers = [
                self._start(f"worker{n}", "distributed.cli.dask_worker", self.address, "--host", "127.0.0.1", "--nthreads", "1",
                            "--no-nanny", "--no-dashboard", "--name", f"worker{n}", "--local-directory", str(workdir / f"worker{n}"))
                for n in range(workers)
            ]
            with self.client() as client:
                client.wait_for_workers(workers, timeout=START_TIMEOUT)
        except BaseException:
            self.stop()
            raise

    def _start(self, name: str, module: str, *args: str) -> subprocess.Popen[bytes]:
        with open(self.workdir / f"{name}.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", module, *args], stdout=log, stderr=subprocess.STDOUT,
                                    env=self.env, cwd=self.workdir)
        self.procs.append(proc)
        return proc

    def _wait_for_address(self, info: Path) -> str:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.scheduler.poll() is not None:
                raise RuntimeError(f"dask scheduler exited: {(self.workdir / 'scheduler.log').read_text()[-2000:]}")
            try:
                return str(json.loads(info.read_text())["address"])
            except (OSError, ValueError, KeyError):
                time.sleep(0.2)
        raise RuntimeError("dask scheduler did not start in time")

    def client(self):  # type: ignore[no-untyped-def]
        from distributed import Client

        return Client(self.address, timeout="10s", set_as_default=False)

    def worker_pid(self, address: str) -> int:
        """The pid of the worker at `address` (one of ours)."""
        with self.client() as client:
            name = client.scheduler_info()["workers"][address]["name"]
        return self.workers[int(str(name).removeprefix("worker"))].pid

    def stop(self) -> None:
        """Every process started here, by pid: workers first, then the scheduler."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

"""`analyze --dask ADDRESS`: the analysis's parts and partitions as tasks on an existing Dask cluster.

The only module that imports dask, and only `analyze --dask` imports it. Two kinds of task:

- *parts* of the inputs (`cniscope.parts`): the client plans them (each input's size and first bytes),
  the workers read and decode them, the client takes the results back in plan order and joins them into
  the capture a local read gives;
- *partitions* of correlation (`journeys.correlate`, as `--memory` makes them): every sighting of a packet
  in one partition; each task carries its partition's rows, so that Dask can run it again elsewhere when its
  worker dies (rows scattered to a worker would die with it).

The rest of the analysis runs on the client, as locally: the report is the local one. Dask re-runs the tasks
of a worker that dies; a task that fails names its input and byte range (or its partition), and what failed
is blamed as locally: an input the workers cannot read is exit 4, a cluster that cannot be reached or that
keeps losing workers exit 5, anything else a bug.
"""

from __future__ import annotations

import asyncio
import uuid
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from cniscope import journeys
from cniscope import parts as parts_mod
from cniscope.analyze import default_memory, plan_partitions
from cniscope.errors import CniscopeError, EnvironmentProblem, InputError, UsageError
from cniscope.ingest import Capture
from cniscope.sources import InputSpec

if TYPE_CHECKING:
    from distributed import Client, Future

CONNECT_TIMEOUT = 5  # seconds: a scheduler that does not answer within it is unreachable
PARTITIONS_PER_THREAD = 2  # at least, so that a slow worker or a lost one does not hold the others up


class Session:
    """A client of the cluster for the length of one analysis: its inputs are read there (`read`), then its
    correlation's partitions run there (`spread`: what `analyze.analyze_capture` takes for it)."""

    def __init__(self, address: str, on_stage: Callable[[str], None] = lambda stage: None) -> None:
        on_stage(f"connecting to the Dask scheduler at {address}")
        self.address, self.on_stage = address, on_stage
        self.client = connect(address)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def read(self, specs: list[InputSpec]) -> Capture:
        self.on_stage(f"reading the inputs on the Dask cluster at {self.address}")
        return read(self.client, specs)

    def spread(self, capture: Capture, memory: int | None) -> dict[str, Any]:
        """The partition count (what `memory` needs here, and at least PARTITIONS_PER_THREAD per worker thread)
        and the Run that sends them to the cluster."""
        threads = sum(self.client.nthreads().values()) or 1
        rows = capture.table.height
        planned = plan_partitions(rows, int(capture.table.estimated_size()), memory or default_memory(), threads)
        return {"partitions": max(planned, min(PARTITIONS_PER_THREAD * threads, rows // 16 or 1)), "run": runner(self.client)}


def connect(address: str) -> Client:
    """A client of the scheduler at `address` (tcp://HOST:PORT); never starts a cluster of its own.

    The scheduler is asked who it is first, on a connection of our own: a `Client` that fails to start
    leaves a traceback on standard error when it is collected, and something else listening at the
    address (a web server) sends what Dask would read as a frame of exabytes.
    """
    try:
        from distributed import Client
        from distributed.comm.addressing import parse_address, parse_host_port
    except ImportError:
        raise EnvironmentProblem("--dask needs Dask installed: pip install 'cniscope[dask]'") from None
    try:
        parse_host_port(parse_address(address)[1])
    except ValueError as exc:
        raise UsageError(f"--dask {address}: not a scheduler address like tcp://HOST:8786 ({exc})") from None
    try:
        who = asyncio.run(_identity(address))
    except (OSError, TimeoutError) as exc:
        raise EnvironmentProblem(f"cannot reach the Dask scheduler at {address} within {CONNECT_TIMEOUT} s: {exc}") from None
    except Exception as exc:  # whatever Dask makes of bytes that are not its protocol
        raise EnvironmentProblem(f"no Dask scheduler answers at {address}: {type(exc).__name__}: {exc}") from None
    if not isinstance(who, dict) or who.get("type") != "Scheduler":
        raise EnvironmentProblem(f"no Dask scheduler answers at {address}: it says it is {who!r:.200}")
    return Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)


async def _identity(address: str) -> object:
    """What the server at `address` says it is (a scheduler: {"type": "Scheduler", ...})."""
    from distributed.comm.core import connect as open_comm

    comm = await open_comm(address, timeout=CONNECT_TIMEOUT)
    try:
        await comm.write({"op": "identity", "reply": True})
        return await asyncio.wait_for(comm.read(), CONNECT_TIMEOUT)
    finally:
        comm.abort()


def read(client: Client, specs: list[InputSpec], part_bytes: int | None = None) -> Capture:
    """Read `specs` as tasks on the cluster: the capture `ingest.read(specs)` gives, row for row."""
    planned = parts_mod.plan(specs, part_bytes or parts_mod.PART_BYTES)
    run = uuid.uuid4().hex[:8]
    futures = [client.submit(parts_mod.read_part, part, key=f"cniscope-part-{run}-{n}", pure=False) for n, part in enumerate(planned)]
    reads = []
    for part, future in zip(planned, futures):
        reads.append(_result(future, f"reading {part}"))
        future.release()  # its table is here now: the worker may drop it

    def reread(part: parts_mod.Part) -> parts_mod.PartRead:
        again: parts_mod.PartRead = _result(client.submit(parts_mod.read_part, part, pure=False), f"reading {part}")
        return again

    return parts_mod.join(reads, reread)


def runner(client: Client) -> journeys.Run:
    """`journeys.Run` on the cluster: a task per partition, carrying its rows; results handed on as they come."""
    from distributed import as_completed

    def run(work: Callable[[pl.DataFrame], Any], t: pl.DataFrame, parts: list[np.ndarray | None],
            consume: Callable[[np.ndarray | None, Any], None]) -> None:
        batch = uuid.uuid4().hex[:8]
        pending: dict[Future[Any], tuple[int, np.ndarray | None]] = {}
        with warnings.catch_warnings():  # the rows go with the task on purpose (see the module's docstring)
            warnings.filterwarnings("ignore", message="Large object", category=UserWarning)
            for n, idx in enumerate(parts):
                future = client.submit(work, journeys.take(t, idx), key=f"cniscope-partition-{batch}-{n}", pure=False)
                pending[future] = (n, idx)
        for future in as_completed(list(pending), loop=client.loop):
            n, idx = pending.pop(future)
            rows = t.height if idx is None else len(idx)
            consume(idx, _result(future, f"correlating partition {n + 1} of {len(parts)} ({rows:,} sightings)"))
            future.release()

    return run


def _result(future: Future[Any], what: str) -> Any:
    """The task's result, or an error that says what the task was doing (`what`: its input and byte range)."""
    from distributed import KilledWorker

    try:
        return future.result()
    except CniscopeError as exc:
        raise type(exc)(f"{what} on the cluster: {exc}") from None
    except KilledWorker:
        raise EnvironmentProblem(f"{what}: every worker that ran it died (out of memory?)") from None
    except FileNotFoundError as exc:
        raise InputError(f"{what}: a worker cannot find it ({exc}); give a path or URL the workers can read") from None
    except OSError as exc:
        raise EnvironmentProblem(f"{what} on the cluster: {exc}") from None
    except Exception as exc:  # a bug on the worker: main() reports it as one, the cause chained for --debug
        raise RuntimeError(f"{what} failed on a worker: {type(exc).__name__}: {exc}") from exc

"""`analyze --dask ADDRESS`: the parts of the inputs read as tasks on an existing Dask cluster.

The only module that imports dask, and only `analyze --dask` imports it. The
client plans the parts (`sources.parts.plan`: it reads each input's size and
first bytes), submits one task per part, takes the results back in plan order
and joins them into the capture a local read would give; the analysis then runs
as it does locally. Dask re-runs the tasks of a worker that dies; a task that
fails names its input and byte range, and what failed is blamed as locally:
an input the workers cannot read is exit 4, a cluster that cannot be reached
or that keeps losing workers exit 5, anything else a bug.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TYPE_CHECKING

from cniscope.errors import CniscopeError, EnvironmentProblem, InputError, UsageError
from cniscope.sources import Capture, InputSpec
from cniscope.sources import parts as parts_mod

if TYPE_CHECKING:
    from distributed import Client, Future

CONNECT_TIMEOUT = 5  # seconds: a scheduler that does not answer within it is unreachable


def connect(address: str) -> Client:
    """A client of the scheduler at `address` (tcp://HOST:PORT); never starts a cluster of its own.

    The scheduler is asked who it is first, on a connection of our own: a `Client` that fails to start
    leaves a traceback on standard error when it is collected, and something else listening at the
    address (a web server) sends what Dask would read as a frame of exabytes.
    """
    try:
        from distributed import Client
        from distributed.comm import parse_address, parse_host_port
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
    from distributed.comm import connect as open_comm

    comm = await open_comm(address, timeout=CONNECT_TIMEOUT)
    try:
        await comm.write({"op": "identity", "reply": True})
        return await asyncio.wait_for(comm.read(), CONNECT_TIMEOUT)
    finally:
        comm.abort()


def read(client: Client, specs: list[InputSpec], part_bytes: int | None = None) -> Capture:
    """Read `specs` as tasks on the cluster: the capture `sources.read(specs)` gives, row for row."""
    planned = parts_mod.plan(specs, part_bytes or parts_mod.PART_BYTES)
    run = uuid.uuid4().hex[:8]
    futures = [client.submit(parts_mod.read_part, part, key=f"cniscope-part-{run}-{n}", pure=False) for n, part in enumerate(planned)]
    reads = []
    for part, future in zip(planned, futures):
        reads.append(_result(future, part))
        future.release()  # its table is here now: the worker may drop it

    def reread(part: parts_mod.Part) -> parts_mod.PartRead:
        return _result(client.submit(parts_mod.read_part, part, pure=False), part)

    return parts_mod.join(reads, reread)


def _result(future: Future, part: parts_mod.Part) -> parts_mod.PartRead:
    """The task's result, or an error that names the part."""
    from distributed import KilledWorker

    try:
        return future.result()
    except CniscopeError as exc:
        raise type(exc)(f"reading {part} on the cluster: {exc}") from None
    except KilledWorker:
        raise EnvironmentProblem(f"reading {part}: every worker that ran it died (out of memory?)") from None
    except FileNotFoundError as exc:
        raise InputError(f"reading {part}: a worker cannot find it ({exc}); give a path or URL the workers can read") from None
    except OSError as exc:
        raise EnvironmentProblem(f"reading {part} on the cluster: {exc}") from None
    except Exception as exc:  # a bug on the worker: main() reports it as one, the cause chained for --debug
        raise RuntimeError(f"reading {part} failed on a worker: {type(exc).__name__}: {exc}") from exc

"""Checking what ``wb.cluster()`` is given, and connecting to a scheduler within a time limit.

``distributed.Client(address, timeout=...)`` bounds the TCP connection, not the
handshake after it: at a port where something that is not a Dask scheduler accepts
connections (a web server, a database, a stale tunnel) the client waits for a reply
forever. :func:`probe` asks the scheduler for its identity first, with one deadline
for the connection and the reply, so a wrong address fails in seconds and says so.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import numbers

from dask.utils import parse_bytes, parse_timedelta

from workbench.errors import ClusterConnectionError  # defined there, re-exported here

#: seconds allowed for connecting to a scheduler and hearing back from it
CONNECT_TIMEOUT = 10.0
SCHEMES = ("tcp", "tls", "ucx", "ucxx", "ws", "wss", "inproc")


def check_count(option: str, value, *, allow_none: bool = True) -> int | None:
    """``value`` as a positive whole number (``n_workers``, ``threads_per_worker``)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{option} must be a positive whole number (1, 2, ...) or None for "
                         f"Dask's default; got {value!r}")
    return int(value)


def check_memory_limit(value):
    """Dask's ``memory_limit``: ``"auto"``, a size (``"4GB"``, bytes) or a share of RAM (0..1]."""
    if value is None or value == "auto":
        return value
    if isinstance(value, str):
        try:
            size = parse_bytes(value)
        except (ValueError, TypeError):
            size = -1
        if size > 0:
            return value
    elif isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) \
            and value > 0:
        return value
    raise ValueError(f"memory_limit must be 'auto', a size such as '4GB' or a number of bytes, "
                     f"or a share of host memory such as 0.5; got {value!r}")


def check_timeout(value) -> float:
    """Seconds, from a number or a Dask duration (``"30s"``)."""
    try:
        seconds = parse_timedelta(value, default="seconds") if isinstance(value, str) else value
        ok = (isinstance(seconds, numbers.Real) and not isinstance(seconds, bool)
              and math.isfinite(seconds) and seconds > 0)
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        raise ValueError(f"timeout must be a positive number of seconds or a duration such as "
                         f"'30s'; got {value!r}")
    return float(seconds)


def check_address(address) -> str:
    """A scheduler address: ``tcp://host:port`` (or another Dask scheme), or ``host:port``."""
    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"a scheduler address is a string such as 'tcp://10.0.0.5:8786'; "
                         f"got {address!r}")
    address = address.strip()
    scheme, _, rest = address.rpartition("://")
    scheme = scheme or "tcp"
    if scheme not in SCHEMES:
        raise ValueError(f"scheduler address {address!r} has the scheme {scheme!r}; use one of "
                         f"{', '.join(s + '://' for s in SCHEMES)} (e.g. 'tcp://10.0.0.5:8786')")
    if scheme != "inproc":
        host, sep, port = rest.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"scheduler address {address!r} needs a host and a port from 1 to "
                             "65535, e.g. 'tcp://10.0.0.5:8786'")
    return f"{scheme}://{rest}"


async def _identity(address: str, timeout: float) -> dict:
    from distributed.comm import connect

    comm = await connect(address, timeout=timeout)
    try:
        await comm.write({"op": "identity", "reply": True})
        return await comm.read()
    finally:
        comm.abort()


def probe(address: str, timeout: float = CONNECT_TIMEOUT) -> dict:
    """The scheduler's identity at ``address``; :class:`ClusterConnectionError` within
    ``timeout`` seconds when nothing, or something that is not a Dask scheduler, answers."""
    fix = ("check the address and port (the scheduler prints them: 'Scheduler at: "
           "tcp://...:8786'), that the scheduler is running and reachable from here, or "
           "call wb.cluster() without an address to start workers on this machine")
    # A thread of its own: the caller may be inside a running event loop (Jupyter).
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="workbench-probe") as pool:
        job = pool.submit(asyncio.run, asyncio.wait_for(_identity(address, timeout), timeout))
        try:
            identity = job.result()
        except (TimeoutError, asyncio.TimeoutError):
            raise ClusterConnectionError(
                f"no Dask scheduler answered at {address} within {timeout:g} s (something "
                f"accepted the connection but did not reply as a scheduler does, or nothing "
                f"is listening): {fix}") from None
        except Exception as err:  # noqa: BLE001 - any failure to talk means no scheduler here
            raise ClusterConnectionError(
                f"could not reach a Dask scheduler at {address}: {type(err).__name__}: {err}; "
                f"{fix}") from None
    if not isinstance(identity, dict) or identity.get("type") != "Scheduler":
        raise ClusterConnectionError(f"the server at {address} answered, but it is not a Dask "
                                     f"scheduler ({str(identity)[:80]!r}); {fix}")
    return identity

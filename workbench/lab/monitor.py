"""``workbench.monitor()``: where this process's memory is, now and over time.

The first question in a lab when something is slow or fails: how full is the GPU (or
its budget), how much host memory is pinned, which columns sit resident on the
device, how many bytes have crossed the bus. A :class:`Snapshot` answers it; a
:class:`Monitor` keeps the snapshots it takes, shows the latest as a table (text, or
HTML in a notebook), plots them over time, and in a notebook with ipywidgets redraws
itself every ``interval`` seconds from a background thread until :meth:`Monitor.stop`.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass

from workbench.sizes import format_bytes
from workbench.session import Session, current_session


@dataclass(frozen=True)
class Snapshot:
    """Memory of this process at one moment (bytes; None where it does not apply)."""

    seconds: float  # since the session started
    host_rss: int | None  # this process's resident host memory
    host_available: int | None  # the machine's MemAvailable
    pinned: int | None  # host memory frames registered with the GPU
    pinned_limit: int | None
    device_used: int | None  # allocated through the session's memory resource
    device_peak: int | None
    device_limit: int | None  # the budget, or what the device offers
    resident: int | None  # frames' columns kept on the device
    resident_limit: int | None
    to_device: int  # bytes copied host->device so far
    to_host: int  # bytes copied device->host so far

    def rows(self) -> list[tuple[str, int | None, int | None]]:
        """(what, used, limit) for the table."""
        return [
            ("GPU memory (session's resource)", self.device_used, self.device_limit),
            ("resident columns", self.resident, self.resident_limit),
            ("pinned host memory", self.pinned, self.pinned_limit),
            ("host memory: this process, of available", self.host_rss, self.host_available),
        ]


def _host_rss() -> int | None:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def snapshot(session: Session | None = None) -> Snapshot:
    """Take one :class:`Snapshot` of the session's process."""
    session = session or current_session()
    meminfo = _meminfo()
    pinned = device = resident = None
    if session.gpu:
        from workbench.frame import device as _device
        from workbench.memory import device_memory_stats

        pinned = _device.pinned_bytes()
        device = device_memory_stats()
        from workbench.frame import residency as frame_residency

        residency = frame_residency.held(session)
        resident = (residency.nbytes, residency.limit) if residency is not None else None
    policy = session.policy
    log = session.transfers
    return Snapshot(
        seconds=round(time.perf_counter() - session._t0, 3),
        host_rss=_host_rss(),
        host_available=meminfo.get("MemAvailable") if meminfo else None,
        pinned=pinned,
        pinned_limit=policy.pinned_limit if pinned is not None else None,
        device_used=device["current_bytes"] if device else None,
        device_peak=device["peak_bytes"] if device else None,
        device_limit=policy.device_memory if session.gpu else None,
        resident=resident[0] if resident else None,
        resident_limit=resident[1] if resident else None,
        to_device=log.total_bytes("host-to-device"),
        to_host=log.total_bytes("device-to-host"),
    )


def _meminfo() -> dict[str, int]:
    from workbench.hardware.probes import SystemProbes

    return SystemProbes().meminfo()


class Monitor:
    """Snapshots of one session's memory; see the module docstring.

    ``update()`` takes a snapshot (kept in ``history``); ``plot()`` draws them;
    ``start()``/``stop()`` redraw a notebook widget every ``interval`` seconds.
    """

    def __init__(self, session: Session | None = None, interval: float = 1.0):
        if interval <= 0:
            raise ValueError(f"interval must be a positive number of seconds; got {interval!r}")
        self.session = session or current_session()
        self.interval = interval
        self.history: list[Snapshot] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.widget = None
        self.update()

    def update(self) -> Snapshot:
        shot = snapshot(self.session)
        self.history.append(shot)
        if self.widget is not None:
            self.widget.value = self._repr_html_()
        return shot

    @property
    def latest(self) -> Snapshot:
        return self.history[-1]

    def table(self) -> str:
        """The latest snapshot as aligned text."""
        shot = self.latest
        lines = [f"memory at {shot.seconds:.1f} s ({self.session.backend})"]
        for what, used, limit in shot.rows():
            if used is None:
                continue
            share = f" ({used / limit:.0%})" if limit else ""
            lines.append(f"  {what:<40} {format_bytes(used):>10} of {format_bytes(limit)}{share}")
        lines.append(f"  copied to the GPU {format_bytes(shot.to_device)}, "
                     f"back {format_bytes(shot.to_host)}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.table()

    def _ipython_display_(self) -> None:
        from IPython.display import HTML, display

        display(self.widget if self.widget is not None else HTML(self._repr_html_()))

    def _repr_html_(self) -> str:
        shot = self.latest
        rows = []
        for what, used, limit in shot.rows():
            if used is None:
                continue
            share = min(1.0, used / limit) if limit else 0.0
            bar = (f'<div style="background:#ddd;width:12em;height:0.8em">'
                   f'<div style="background:#76b900;width:{share * 100:.1f}%;height:100%"></div></div>')
            rows.append(f"<tr><td>{what}</td><td>{format_bytes(used)}</td>"
                        f"<td>{format_bytes(limit)}</td><td>{bar}</td></tr>")
        return (f"<table><caption>memory at {shot.seconds:.1f} s ({self.session.backend}); "
                f"copied to the GPU {format_bytes(shot.to_device)}, back "
                f"{format_bytes(shot.to_host)}</caption>"
                "<tr><th>what</th><th>used</th><th>of</th><th></th></tr>"
                + "".join(rows) + "</table>")

    def plot(self, ax=None):
        """Each kind of memory over the snapshots taken (GB against seconds)."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 3.5))
        series = {"GPU memory": "device_used", "resident columns": "resident",
                  "pinned host": "pinned", "host (this process)": "host_rss"}
        times = [s.seconds for s in self.history]
        for label, field in series.items():
            values = [getattr(s, field) for s in self.history]
            if any(v is not None for v in values):
                ax.plot(times, [(v or 0) / 1e9 for v in values], marker=".", label=label)
        ax.set_xlabel("seconds since the session started")
        ax.set_ylabel("GB")
        ax.legend(loc="upper left", fontsize="small")
        return ax

    def start(self):
        """Show a widget that redraws every ``interval`` seconds (needs ipywidgets)."""
        import ipywidgets

        if self.widget is None:
            self.widget = ipywidgets.HTML(self._repr_html_())
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="workbench-monitor",
                                            daemon=True)
            self._thread.start()
        return self.widget

    def stop(self) -> None:
        """Stop redrawing (the history is kept)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5 * self.interval)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.update()

    def to_dicts(self) -> list[dict]:
        """The history as plain dictionaries (for JSON or a DataFrame)."""
        return [asdict(s) for s in self.history]


def monitor(interval: float = 1.0, *, live: bool | None = None) -> Monitor:
    """A :class:`Monitor` of the current session.

    ``live``: start the redrawing widget; default when ipywidgets is importable
    inside a running IPython kernel. Without it, the monitor shows a snapshot when
    displayed and ``update()`` takes another.
    """
    mon = Monitor(interval=interval)
    if live is None:
        live = _in_kernel()
    if live:
        mon.start()
    return mon


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython

        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None

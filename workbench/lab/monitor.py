"""``workbench.monitor()``: where this process's memory is, now and over time.

The first question in a lab when something is slow or fails: how full is the GPU (or
its budget), how much host memory is pinned, which columns sit resident on the
device, how many bytes have crossed the bus. A :class:`Snapshot` answers it; a
:class:`Monitor` keeps the snapshots it takes, shows the latest as a table (text, or
HTML in a notebook), plots them over time, and in a notebook with ipywidgets redraws
itself every ``interval`` seconds from a background thread until :meth:`Monitor.stop`
(:meth:`Monitor.sampling` samples during a block of work, with no widget).

In a lab (``WORKBENCH_STUDENT`` set) each snapshot is also written, a few hundred bytes,
to ``<workspace>/.workbench/usage/<student>.<pid>.json``; :func:`students` (and
``wb.monitor(students=workspace)``) reads them back as the instructor's table of every
student's use. NVML's per-process figure is used where NVML has one; on GB10 (DGX
Spark), where NVML reports no memory, the table shows what each kernel's session
reports (its RMM statistics).
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
import os
import socket
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from workbench.lab.exercises import STUDENT, student, workspace
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
    import psutil

    try:
        return int(psutil.Process().memory_info().rss)
    except psutil.Error:
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
        self.interval = _interval(interval)
        self.session = session or current_session()
        self.history: list[Snapshot] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.widget = None
        self._published = -math.inf
        self.update()

    def update(self) -> Snapshot:
        shot = snapshot(self.session)
        self.history.append(shot)
        if os.environ.get(STUDENT) and time.monotonic() - self._published >= 1.0:
            self._published = time.monotonic()
            publish(shot, self.session)
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

    def start(self, widget: bool = True):
        """Sample every ``interval`` seconds in the background; with ``widget``, show a
        table that redraws itself (needs ipywidgets)."""
        if widget and self.widget is None:
            import ipywidgets

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

    @contextlib.contextmanager
    def sampling(self, interval: float | None = None):
        """Snapshots every ``interval`` seconds (default the monitor's) while the block
        runs, so the plot shows the work as it happened, not two points joined by a line."""
        previous, self.interval = self.interval, _interval(interval or self.interval)
        self.update()
        self.start(widget=False)
        try:
            yield self
        finally:
            self.stop()
            self.interval = previous
            self.update()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.update()

    def to_dicts(self) -> list[dict]:
        """The history as plain dictionaries (for JSON or a DataFrame)."""
        return [asdict(s) for s in self.history]


def _interval(value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) \
            or value <= 0:
        raise ValueError(f"interval must be a positive number of seconds (e.g. 1.0); got {value!r}")
    return float(value)


def monitor(interval: float = 1.0, *, live: bool | None = None, students=None):
    """A :class:`Monitor` of the current session, or with ``students`` (a workspace
    folder) the :class:`Classroom` view of every student's use.

    ``live``: start the redrawing widget; default when ipywidgets is importable
    inside a running IPython kernel. Without it, the monitor shows a snapshot when
    displayed and ``update()`` takes another.
    """
    interval = _interval(interval)
    if students is not None:
        return Classroom(students)
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


# --- the class: one small usage file per student kernel -------------------------------

def usage_dir(root=None) -> Path:
    return Path(root or workspace()).expanduser() / ".workbench" / "usage"


def publish(shot: Snapshot | None = None, session: Session | None = None) -> Path:
    """Write this kernel's use (from ``shot``, else a new snapshot) for the instructor."""
    session = session or current_session()
    shot = shot or snapshot(session)
    path = usage_dir() / f"{student()}.{os.getpid()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"student": student(), "pid": os.getpid(), "host": socket.gethostname(),
              "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"), "backend": session.backend,
              "device_used": shot.device_used, "device_peak": shot.device_peak,
              "budget": session.policy.budget if session.gpu else None,
              "host_rss": shot.host_rss, "time": time.time()}
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(record))
    partial.replace(path)
    return path


def _nvml_processes() -> dict[int, int | None]:
    """pid -> GPU memory NVML sees for it (None where NVML cannot tell, as on GB10)."""
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception:  # no NVML here: the sessions' reports are all there is
        return {}
    found: dict[int, int | None] = {}
    try:
        for i in range(pynvml.nvmlDeviceGetCount()):
            try:
                procs = pynvml.nvmlDeviceGetComputeRunningProcesses(pynvml.nvmlDeviceGetHandleByIndex(i))
            except pynvml.NVMLError:
                continue
            for proc in procs:
                used = getattr(proc, "usedGpuMemory", None)
                found[proc.pid] = found.get(proc.pid, 0) + used if used is not None else None
    finally:
        pynvml.nvmlShutdown()
    return found


def students(root=None, *, stale_after: float = 60.0):
    """Every student kernel's use under ``root`` (a workspace, or the folder of all of
    them), as a polars DataFrame; kernels that have exited are left out."""
    import polars as pl
    import psutil

    nvml = _nvml_processes()
    here, now, rows = socket.gethostname(), time.time(), []
    for path in sorted(Path(root or workspace()).expanduser().glob("**/.workbench/usage/*.json")):
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # being replaced right now; the next update reads it
        if rec.get("host") == here and not psutil.pid_exists(rec["pid"]):
            continue
        from_nvml = nvml.get(rec["pid"]) if rec.get("host") == here else None
        rows.append({"student": rec["student"], "pid": rec["pid"], "gpu": rec.get("gpu"),
                     "gpu_memory": from_nvml if from_nvml is not None else rec.get("device_used"),
                     "source": "nvml" if from_nvml is not None else "session",
                     "peak": rec.get("device_peak"), "budget": rec.get("budget"),
                     "host_rss": rec.get("host_rss"), "age_s": round(now - rec["time"], 1),
                     "stale": now - rec["time"] > stale_after})
    schema = {"student": pl.String, "pid": pl.Int64, "gpu": pl.String, "gpu_memory": pl.Int64,
              "source": pl.String, "peak": pl.Int64, "budget": pl.Int64, "host_rss": pl.Int64,
              "age_s": pl.Float64, "stale": pl.Boolean}
    return pl.DataFrame(rows, schema=schema, orient="row").sort("student", "pid")


class Classroom:
    """The instructor's view: :func:`students` as a table that ``update()`` rereads."""

    def __init__(self, root):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise FileNotFoundError(f"no workspace folder at {self.root}: pass the lab's workspace")
        self.update()

    def update(self):
        self.table = students(self.root)
        return self.table

    def __repr__(self) -> str:
        lines = [f"{self.table.height} student kernels under {self.root}"]
        for r in self.table.iter_rows(named=True):
            used = "-" if r["gpu_memory"] is None else format_bytes(r["gpu_memory"])
            budget = f" of {format_bytes(r['budget'])}" if r["budget"] else ""
            host = "-" if r["host_rss"] is None else format_bytes(r["host_rss"])
            lines.append(f"  {r['student']:<16} pid {r['pid']:<8} GPU {r['gpu'] or '-':<3} "
                         f"{used}{budget} ({r['source']}), host {host}"
                         f"{' stale' if r['stale'] else ''}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        from html import escape

        return "<pre>" + escape(repr(self)) + "</pre>"

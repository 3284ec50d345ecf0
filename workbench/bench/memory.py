"""Memory for the benchmark: does a table fit an engine, and what did a question use.

Fit: an engine that holds the whole table needs ``host_factor`` (and ``device_factor``)
times the tables' in-memory size; over 90% of what is available (or over a GPU budget),
it is refused with the figures in the reason. Use: the process's peak resident set
(Linux VmHWM, reset before each question) and the device memory in use seen by NVML,
sampled while a question runs.
"""

from __future__ import annotations

import threading

from workbench.bench.engine_base import gb

#: share of the available memory an engine may plan to use
FIT_FRACTION = 0.9


# --- memory --------------------------------------------------------------------------


def host_available() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def device_total() -> int | None:
    """Memory of GPU 0 (the host's on unified memory), as the workbench detects it."""
    from workbench.hardware import detect

    return detect().device_memory_total


def fit_reason(engine, table_bytes: int, host: int, device: int | None,
               budget: int | None = None) -> str | None:
    """Why ``engine`` must not load tables of ``table_bytes`` here, or ``None``.

    Parameters
    ----------
    engine : Engine
        Its ``host_factor`` and ``device_factor`` give what it holds per table byte.
    table_bytes : int
        The tables' estimated in-memory size.
    host, device : int
        Bytes of host memory available and of device memory (None: unknown).
    budget : int, optional
        A GPU memory budget (``--gpu-budget``): an engine that holds the tables on
        the device must fit in it, not merely in the device.
    """
    need = table_bytes * engine.host_factor
    if need > FIT_FRACTION * host:
        return (f"needs ~{gb(need)} of host memory ({engine.host_factor:g}x the "
                f"{gb(table_bytes)} tables), {gb(host)} available")
    if engine.device_factor and budget:
        need = table_bytes * engine.device_factor
        if need > budget:
            return (f"needs ~{gb(need)} on the device ({engine.device_factor:g}x the "
                    f"{gb(table_bytes)} tables), budget {gb(budget)}")
    if engine.device_factor and device:
        need = table_bytes * engine.device_factor
        if need > FIT_FRACTION * device:
            return (f"needs ~{gb(need)} of device memory ({engine.device_factor:g}x the "
                    f"{gb(table_bytes)} tables), the device has {gb(device)}")
    return None


def read_status_bytes(key: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    # Writing 5 to clear_refs resets this process's peak RSS (VmHWM) on Linux.
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


class DevicePeak:
    """Peak device memory in use (NVML, whole device, pools included) while it runs."""

    def __init__(self, enabled: bool, interval: float = 0.01):
        self.enabled, self.interval, self.peak = enabled, interval, None

    def __enter__(self):
        if not self.enabled:
            return self
        try:
            import pynvml

            pynvml.nvmlInit()
            h = pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:
            self.enabled = False
            return self
        self._stop = threading.Event()

        def sample():
            peak = 0
            while True:
                try:
                    peak = max(peak, int(pynvml.nvmlDeviceGetMemoryInfo(h).used))
                except Exception:
                    break
                self.peak = peak
                if self._stop.wait(self.interval):
                    break

        self._t = threading.Thread(target=sample, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self._stop.set()
            self._t.join()
            try:
                import pynvml

                pynvml.nvmlShutdown()
            except Exception:
                pass
        return False

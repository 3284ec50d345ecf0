"""``workbench.init()``: hardware + memory policy + backend -> :class:`Session`.

One session per process. It knows what the machine is, which memory policy applies,
whether steps run on the GPU or the CPU, every CPU<->GPU copy made, and every time a
step fell back to the CPU (and why).
"""

from __future__ import annotations

import html
import os
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from workbench import config, hardware
from workbench import memory as memory_policy
from workbench.errors import ConfigurationError, GPUFallbackWarning, GPUUnavailableError
from workbench.optional import available
from workbench.session.transfers import TransferLog
from workbench.sizes import format_bytes

BACKENDS = config.BACKENDS
# Share of the device memory (or budget) that resident frame columns may take; the
# rest is left to the queries that run over them.
RESIDENT_FRACTION = 0.5

_lock = threading.RLock()
_current: Session | None = None
_sessions: dict[tuple, Session] = {}  # by init()'s arguments: the same ones, the same session
_PACKAGE = str(Path(__file__).resolve().parents[1]) + os.sep


def find_stack_level() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside the package.

    As pandas' ``find_stack_level``: Python shows a warning once per code location,
    so a warning attributed to a line inside the workbench would be shown once per
    process for every caller; attributed to the caller's line, each call site shows it.
    """
    frame, level = sys._getframe(1), 1  # 1: the function that calls warnings.warn
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE):
        frame, level = frame.f_back, level + 1
    return level


@dataclass(repr=False)
class Session:
    """What this process runs on, with which memory policy; see :func:`init`.

    Attributes
    ----------
    hardware : HardwareProfile
    policy : MemoryPolicy
    backend : str
        ``"gpu"`` or ``"cpu"``: where steps run (``"auto"`` is resolved here).
    requested_backend : str
        What was asked for: ``"auto"``, ``"cpu"`` or ``"gpu"``.
    strict : bool
        When True a step that cannot run on the GPU raises instead of falling back.
    transfers : TransferLog
        Every CPU<->GPU copy made by the workbench.
    log : list of (seconds since init, message)
        Fallbacks and other notable events.
    """

    hardware: hardware.HardwareProfile
    policy: memory_policy.MemoryPolicy
    backend: str
    requested_backend: str
    strict: bool = False
    transfers: TransferLog = field(default_factory=TransferLog)
    log: list = field(default_factory=list)
    _key: tuple = ()
    _t0: float = field(default_factory=time.perf_counter)

    @property
    def resident_limit(self) -> int:
        """Bytes of frame columns that may stay resident on the device (0 on the CPU)."""
        return int((self.policy.device_memory or 0) * RESIDENT_FRACTION)

    @property
    def gpu(self) -> bool:
        """True when steps run on the GPU."""
        return self.backend == "gpu"

    def note(self, message: str) -> None:
        """Add an entry to the session log."""
        self.log.append((round(time.perf_counter() - self._t0, 3), message))

    def fallback(self, step: str, reason: str, *, strict: bool | None = None) -> None:
        """A step could not run on the GPU: warn and log it, or raise when strict.

        Follows polars' ``engine=`` contract: the step runs on the CPU instead, and
        ``strict=True`` (polars: ``raise_on_fail=True``) makes it an error.
        """
        message = f"{step} could not run on the GPU and ran on the CPU instead: {reason}"
        if self.strict if strict is None else strict:
            raise GPUUnavailableError(
                f"{step} could not run on the GPU: {reason}. "
                "Pass strict=False (raise_on_fail=False) to run it on the CPU instead."
            )
        self.note(message)
        warnings.warn(message, GPUFallbackWarning, stacklevel=find_stack_level())

    def ensure_gpu(self) -> None:
        """Apply the memory policy before the first GPU allocation (once per process)."""
        if not self.gpu:
            raise GPUUnavailableError(
                f"this session runs on the CPU ({self._why_cpu()}); "
                "call workbench.init(backend='gpu') on a machine with a usable GPU"
            )
        self.policy.apply()

    def _why_cpu(self) -> str:
        if self.requested_backend == "cpu":
            return "backend='cpu' was asked for"
        if not self.hardware.has_usable_gpu:
            return f"no usable GPU: {self.hardware.reason}"
        return "RAPIDS (cudf) is not installed: pip install 'gpu-workbench[gpu]'"

    def _device(self) -> str:
        gpu = self.hardware.gpu
        if not self.gpu or gpu is None:
            return "none"
        return f"{gpu.name} ({format_bytes(self.policy.gpu_memory or gpu.total_memory)})"

    def _budget(self) -> str:
        return format_bytes(self.policy.budget) if self.gpu and self.policy.budget else "none"

    def __repr__(self) -> str:
        # Short on purpose: report() and the HTML view say why and what moved.
        return (f"<workbench.Session backend={self.backend!r} (asked {self.requested_backend!r}) "
                f"device={self._device()!r} memory={self.policy.mode!r} budget={self._budget()!r}>")

    def _repr_html_(self) -> str:
        why = "" if self.gpu else f" ({self._why_cpu()})"
        rows = [("backend", f"{self.backend}{why}"), ("device", self._device()),
                ("memory", self.policy.summary()), ("budget", self._budget()),
                ("transfers", self.transfers.summary()),
                ("log", f"{len(self.log)} entries" + (f"; last: {self.log[-1][1]}" if self.log else ""))]
        body = "".join(f"<tr><th style='text-align:left'>{k}</th>"
                       f"<td style='text-align:left'>{html.escape(v).replace(chr(10), '<br>')}</td></tr>"
                       for k, v in rows)
        return f"<table><caption style='text-align:left'>workbench.Session</caption>{body}</table>"

    def report(self) -> str:
        """A readable account of the machine, the policy, the copies and the fallbacks."""
        hw = self.hardware
        gpu = hw.gpu
        lines = [
            f"backend      {self.backend} (asked: {self.requested_backend}"
            + ("" if self.gpu else f"; {self._why_cpu()}") + ")",
            f"platform     {hw.platform}: {hw.reason}",
        ]
        if gpu is not None:
            lines.append(f"gpu          {gpu.name}, compute capability "
                         f"{gpu.compute_capability[0]}.{gpu.compute_capability[1]}")
        lines.append("memory policy")
        lines += ["  " + line for line in self.policy.describe().splitlines()]
        lines.append("transfers")
        lines += ["  " + line for line in self.transfers.summary().splitlines()]
        if self.log:
            lines.append("log")
            lines += [f"  [{t:8.3f}s] {m}" for t, m in self.log]
        return "\n".join(lines)


def _rapids_installed() -> bool:
    # Not imported: a broken cudf must not crash the session.
    return available("cudf")


def init(
    backend: str | None = None,
    memory: str | None = None,
    budget=None,
    *,
    spill: bool | None = None,
    strict: bool = False,
    probes=None,
) -> Session:
    """Start (or return) the workbench session of this process.

    Parameters
    ----------
    backend : {"auto", "cpu", "gpu"}, optional
        Where steps run. ``"auto"`` (default, or ``WORKBENCH_BACKEND``) uses the GPU
        when there is a usable one with RAPIDS installed, else the CPU. ``"gpu"``
        raises :class:`~workbench.errors.GPUUnavailableError` saying why when there is none.
    memory : str, optional
        Memory mode (``WORKBENCH_MEMORY``); see :data:`workbench.memory.MODES`.
    budget : int, str or float, optional
        GPU memory budget (``WORKBENCH_GPU_BUDGET``): bytes, ``"8GB"``, or a fraction
        of the device's memory.
    spill : bool, optional
        cudf spilling to host memory; on by default on discrete GPUs.
    strict : bool
        Raise instead of falling back to the CPU when a step cannot run on the GPU.
    probes : optional
        Hardware probes (tests pass fake ones); see :mod:`workbench.hardware`.

    Returns
    -------
    Session
        The same object for the same arguments: ``init`` is idempotent per process.

    Examples
    --------
    >>> import workbench as wb
    >>> wb.init(backend="cpu").backend
    'cpu'
    """
    global _current
    backend = config.backend(backend)
    memory_mode = config.memory_mode(memory)
    budget = config.budget(budget)
    key = (backend, memory_mode, _budget_key(budget), spill, strict, id(probes) if probes else None)
    with _lock:
        known = _sessions.get(key)
        if known is not None:
            _current = known
            return known
        profile = hardware.detect(probes) if probes is not None else hardware.detect()
        use_gpu = backend != "cpu" and profile.has_usable_gpu and _rapids_installed()
        if backend == "gpu" and not use_gpu:
            why = (f"no usable GPU ({profile.platform}: {profile.reason})"
                   if not profile.has_usable_gpu else
                   "RAPIDS is not installed; fix: pip install 'gpu-workbench[gpu]' "
                   "(or 'gpu-workbench[gpu-cu12]' with a CUDA 12 driver)")
            raise GPUUnavailableError(
                f"backend='gpu' was asked for but cannot be used: {why}. "
                "Run `workbench doctor` for details, or use backend='auto' to run on the CPU."
            )
        why_cpu = None
        if not use_gpu:
            why_cpu = ("backend='cpu' was asked for" if backend == "cpu" else
                       "no usable GPU" if not profile.has_usable_gpu else
                       "RAPIDS is not installed")
        try:
            policy = memory_policy.choose(profile, mode=memory_mode if use_gpu else "cpu",
                                          budget=budget if use_gpu else None, spill=spill,
                                          why=why_cpu)
        except ValueError as err:
            source = f" (from {config.MEMORY} / {config.BUDGET})" if (
                os.environ.get(config.MEMORY) or os.environ.get(config.BUDGET)) else ""
            raise ConfigurationError(f"{err}{source}") from None
        applied = memory_policy.applied()
        if use_gpu and applied is not None and applied.mode != "cpu":
            policy.apply()  # the same policy: a no-op; another: PolicyAlreadyAppliedError saying why
        _current = _sessions[key] = Session(
            hardware=profile,
            policy=policy,
            backend="gpu" if use_gpu else "cpu",
            requested_backend=backend,
            strict=strict,
            _key=key,
        )
        if backend == "auto" and not use_gpu:
            _current.note(f"running on the CPU: {_current._why_cpu()}")
        return _current


def _budget_key(budget):
    """A budget as bytes where it is a size (``"1GB"`` and ``10**9`` are one budget)."""
    if budget is None:
        return None
    try:
        return memory_policy.parse_budget(budget, None)
    except ValueError:  # a fraction: bytes only once the device is known
        return float(str(budget).rstrip("%")) / (100 if str(budget).endswith("%") else 1)


def current_session() -> Session:
    """The session of this process, started with the defaults if there is none yet."""
    with _lock:
        return _current if _current is not None else init()


def _reset_for_tests() -> None:
    """Forget the current session (tests only; a GPU policy once applied stays applied)."""
    global _current
    with _lock:
        _current = None
        _sessions.clear()

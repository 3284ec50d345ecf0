"""``workbench doctor``: is this machine usable, and what should be fixed?

The doctor detects the hardware (without importing any GPU library), chooses the
memory policy, reads the versions, and runs checks. Each failed check has a fix.
Imports of cudf, cuml and cudf_polars are tried in a subprocess first, so an import
that crashes the interpreter is reported with its signal instead of suffered.

>>> from workbench.diagnostics.checks import run
>>> report = run()
>>> isinstance(report.ok, bool)
True
"""

from __future__ import annotations

import dataclasses
import os
import signal as _signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable

from workbench import config, hardware, memory
from workbench.hardware import MIN_COMPUTE_CAPABILITY, HardwareProfile, Probes
from workbench.optional import available
from workbench.sizes import format_bytes
from workbench.diagnostics.versions import DISTRIBUTION, DISTRIBUTIONS, foreign_workbench, stack_versions

# What cudf-polars 26.10 accepts, for when it is not installed to ask.
POLARS_REQUIREMENT = ">=1.35,<1.45"
GPU_MODULES = ("cudf", "cuml", "cudf_polars")
LOW_FREE_MEMORY = 10**9
IMPORT_TIMEOUT = 180.0
# The driver a wheel's CUDA major needs at least (CUDA 13: R580, CUDA 12: R525).
MIN_DRIVER = {13: "580", 12: "525"}


@dataclass(frozen=True)
class Check:
    """One check: ``ok`` is True, False, or None for "not applicable here".

    A failed check of ``severity="warning"`` is reported but leaves the machine usable.
    """

    name: str
    ok: bool | None
    detail: str
    fix: str = ""
    severity: str = "error"


@dataclass(frozen=True)
class ImportOutcome:
    """The result of trying ``import module``: ``missing`` when it is not installed,
    ``signal`` when the interpreter was killed by one."""

    module: str
    ok: bool
    detail: str
    missing: bool = False
    signal: int | None = None


Importer = Callable[[str], ImportOutcome]


def subprocess_import(module: str, timeout: float = IMPORT_TIMEOUT) -> ImportOutcome:
    """Try ``import module`` in a fresh interpreter; never crashes this one."""
    if not available(module):  # not installed: no need for a subprocess
        return ImportOutcome(module, False, f"No module named '{module}'", missing=True)
    code = f"import {module} as m; print(getattr(m, '__version__', ''))"
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return ImportOutcome(module, False, f"import {module} did not finish within {timeout:.0f} s")
    if proc.returncode == 0:
        return ImportOutcome(module, True, proc.stdout.strip())
    if proc.returncode < 0:
        sig = -proc.returncode
        try:
            name = _signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return ImportOutcome(module, False, f"import {module} crashed the interpreter with {name}", signal=sig)
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else f"exit status {proc.returncode}"
    is_missing = f"No module named '{module}'" in last
    return ImportOutcome(module, False, last, missing=is_missing)


def polars_requirement() -> str:
    """The polars versions the installed cudf-polars accepts (its ``Requires-Dist``)."""
    from packaging.requirements import InvalidRequirement, Requirement

    for dist in DISTRIBUTIONS["cudf-polars"]:
        try:
            requires = metadata.requires(dist) or []
        except metadata.PackageNotFoundError:
            continue
        for line in requires:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if req.name == "polars" and (req.marker is None or req.marker.evaluate({"extra": ""})):
                return str(req.specifier)
    return POLARS_REQUIREMENT


def _version_ok(version: str, requirement: str) -> bool:
    from packaging.specifiers import SpecifierSet

    return SpecifierSet(requirement).contains(version, prereleases=True)


def _extra(profile: HardwareProfile) -> str:
    cuda = profile.cuda_driver_version
    return "gpu-cu12" if cuda is not None and cuda[0] < 13 else "gpu"


# ---------------------------------------------------------------------------- checks


def _check_platform(profile: HardwareProfile) -> Check:
    if profile.platform == "cpu":
        return Check("platform", True, f"cpu — {profile.reason}; polars, scikit-learn and dask run on the CPU")
    if profile.platform != "broken":
        return Check("platform", True, f"{profile.platform} — {profile.reason}")
    if profile.gpu is not None:  # a working GPU too old for RAPIDS
        fix = "use a Volta (compute capability 7.0) or newer GPU; meanwhile workbench.init(backend='cpu')"
    else:
        fix = ("run `nvidia-smi`; after a driver update reboot (or reload the nvidia kernel modules); "
               "in a container pass --gpus all (NVIDIA Container Toolkit); check CUDA_VISIBLE_DEVICES. "
               "Meanwhile workbench.init(backend='cpu') runs on the CPU")
    return Check("platform", False, f"broken — {profile.reason}", fix)


def _check_compute_capability(profile: HardwareProfile) -> Check:
    gpu = profile.gpu
    if gpu is None:
        return Check("compute capability", None, "no GPU")
    cc = gpu.compute_capability
    need = f"{MIN_COMPUTE_CAPABILITY[0]}.{MIN_COMPUTE_CAPABILITY[1]}"
    if cc >= MIN_COMPUTE_CAPABILITY:
        return Check("compute capability", True, f"{cc[0]}.{cc[1]} (RAPIDS needs {need}+)")
    return Check("compute capability", False, f"{gpu.name} is {cc[0]}.{cc[1]}; RAPIDS needs {need} (Volta) or newer",
                 "use a newer GPU; this one can run the CPU backends only: workbench.init(backend='cpu')")


def _check_driver(profile: HardwareProfile, versions: dict[str, str | None]) -> Check:
    flavour = versions.get("rapids-cuda")
    name = "driver vs RAPIDS wheels"
    if not flavour:
        return Check(name, None, "no CUDA-suffixed RAPIDS wheels installed")
    need = int(flavour[2:])
    cuda = profile.cuda_driver_version
    if cuda is None:
        ok = None if profile.platform == "cpu" else False
        return Check(name, ok, f"{flavour} wheels installed; no CUDA driver answered",
                     "" if ok is None else f"install or repair the NVIDIA driver (≥ {MIN_DRIVER.get(need, '?')})")
    have = f"driver {profile.driver_version or '?'} supports CUDA {cuda[0]}.{cuda[1]}"
    if cuda[0] >= need:
        return Check(name, True, f"{flavour} wheels; {have}")
    if need >= 13:
        fix = (f"upgrade the NVIDIA driver to ≥ {MIN_DRIVER[13]} for CUDA 13 wheels, "
               "or pip install 'gpu-workbench[gpu-cu12]' (after removing the -cu13 packages)")
    else:
        fix = f"upgrade the NVIDIA driver to ≥ {MIN_DRIVER.get(need, '525')} (CUDA {need})"
    return Check(name, False, f"{flavour} wheels need a CUDA {need} driver; {have}", fix)


def _check_imports(profile: HardwareProfile, importer: Importer) -> list[Check]:
    if not profile.has_usable_gpu:
        return [Check(f"import {m}", None, "skipped: no usable GPU") for m in GPU_MODULES]
    extra = _extra(profile)
    with ThreadPoolExecutor(len(GPU_MODULES)) as pool:  # the imports take seconds each
        outcomes = list(pool.map(importer, GPU_MODULES))
    checks = []
    for out in outcomes:
        name = f"import {out.module}"
        if out.ok:
            checks.append(Check(name, True, f"{out.module} {out.detail}".strip()))
        elif out.missing:
            checks.append(Check(name, False, f"{out.module} is not installed", f"pip install 'gpu-workbench[{extra}]'"))
        elif out.signal is not None:
            checks.append(Check(name, False, out.detail,
                                f"the RAPIDS wheels do not work with this driver: run python -c 'import {out.module}' "
                                f"to see the crash, then reinstall 'gpu-workbench[{extra}]' in a fresh environment"))
        else:
            checks.append(Check(name, False, out.detail, f"reinstall: pip install --force-reinstall 'gpu-workbench[{extra}]'"))
    return checks


def _check_polars(profile: HardwareProfile, versions: dict[str, str | None]) -> Check:
    name = "polars for the GPU engine"
    have = versions.get("polars")
    if not profile.has_usable_gpu and not versions.get("cudf-polars"):
        return Check(name, None, "no GPU engine here")
    requirement = polars_requirement()
    if have is None:
        return Check(name, False, "polars is not installed", f"pip install 'polars{requirement}'")
    source = "cudf-polars requires" if versions.get("cudf-polars") else "cudf-polars 26.10 requires"
    if _version_ok(have, requirement):
        return Check(name, True, f"polars {have}; {source} polars{requirement}")
    return Check(name, False, f"polars {have}, but {source} polars{requirement}", f"pip install 'polars{requirement}'")


def _check_free_memory(profile: HardwareProfile) -> Check:
    name = "free device memory"
    if not profile.has_usable_gpu:
        return Check(name, None, "no usable GPU", severity="warning")
    free = profile.device_memory_free
    if free is None:
        return Check(name, None, "unknown (NVML did not say)", severity="warning")
    if free < LOW_FREE_MEMORY:
        return Check(name, False, f"only {format_bytes(free)} free of {format_bytes(profile.device_memory_total)}",
                     "other processes hold the GPU: see nvidia-smi, close them, or set a smaller budget",
                     severity="warning")
    return Check(name, True, f"{format_bytes(free)} free of {format_bytes(profile.device_memory_total)}",
                 severity="warning")


def _check_configuration() -> Check:
    """The WORKBENCH_* variables set now: a bad one makes wb.init() fail, so it fails here too."""
    found = config.problems()
    if not found:
        set_now = [v for v in config.VARIABLES if os.environ.get(v)]
        return Check("configuration", True, ", ".join(f"{v}={os.environ[v]}" for v in set_now)
                     or "no WORKBENCH_* variables set")
    return Check("configuration", False, "; ".join(found),
                 "unset the variable or give it one of the values named")


def _check_distribution(foreign: Callable[[], Any] = foreign_workbench) -> Check:
    """The unrelated ``workbench`` distribution (not this one) installed beside it?"""
    other = foreign()
    if other is None:
        return Check("distribution", True, f"{DISTRIBUTION}; no other 'workbench' distribution installed")
    summary = other.metadata.get("Summary") or "no summary"
    return Check("distribution", False,
                 f"another distribution named 'workbench' ({other.version}: {summary}) is installed; it "
                 f"also provides `import workbench`, so it and {DISTRIBUTION} cannot share one environment",
                 f"pip uninstall workbench, then pip install --force-reinstall {DISTRIBUTION} "
                 "(or use a separate virtual environment for the other one)")


# ---------------------------------------------------------------------------- the report


@dataclass
class DoctorReport:
    """What the doctor found: hardware, memory policy, versions and checks."""

    hardware: HardwareProfile
    policy: memory.MemoryPolicy | None
    versions: dict[str, str | None]
    checks: list[Check] = field(default_factory=list)

    @property
    def failures(self) -> list[Check]:
        """Failed checks that make the machine unusable (warnings excluded)."""
        return [c for c in self.checks if c.ok is False and c.severity == "error"]

    @property
    def ok(self) -> bool:
        """Whether the machine is usable (a CPU-only machine is)."""
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (``workbench doctor --json``)."""
        return {
            "ok": self.ok,
            "hardware": self.hardware.to_dict(),
            "policy": self.policy.to_dict() if self.policy else None,
            "versions": dict(self.versions),
            "checks": [dataclasses.asdict(c) for c in self.checks],
        }

    def format(self) -> str:
        """The report as readable text, with the policy's reasons and each fix."""
        hw = self.hardware
        lines = ["workbench doctor", ""]
        if hw.gpu is not None:
            g = hw.gpu
            cuda = f"CUDA {hw.cuda_driver_version[0]}.{hw.cuda_driver_version[1]}" if hw.cuda_driver_version else "CUDA ?"
            lines.append(f"gpu       {g.name}, compute capability {g.compute_capability[0]}.{g.compute_capability[1]}, "
                         f"{format_bytes(hw.device_memory_total)} ({format_bytes(hw.device_memory_free)} free)")
            lines.append(f"driver    {hw.driver_version or '?'} ({cuda})")
        lines.append(f"host      {hw.machine}, {hw.cpu_count} CPUs, {format_bytes(hw.host_memory_total)} memory "
                     f"({format_bytes(hw.host_memory_available)} available){', WSL' if hw.is_wsl else ''}")
        lines.append(f"platform  {hw.platform}")
        lines.append("")
        lines += self.policy.describe().splitlines() if self.policy else ["memory policy: none"]
        lines += ["", "checks"]
        mark = {True: " ok ", False: "FAIL", None: " -- "}
        for c in self.checks:
            tag = "WARN" if c.ok is False and c.severity == "warning" else mark[c.ok]
            lines.append(f"  [{tag}] {c.name}: {c.detail}")
            if c.ok is False and c.fix:
                lines.append(f"         fix: {c.fix}")
        lines += ["", "versions"]
        width = max(map(len, self.versions), default=0)
        lines += [f"  {k:<{width}}  {v or '-'}" for k, v in self.versions.items()]
        lines += ["", "usable" if self.ok else f"NOT usable: {len(self.failures)} problem(s) to fix, see above"]
        return "\n".join(lines)

    # Shown once in a notebook or the REPL: the value is the report (doctor() prints nothing).
    __str__ = __repr__ = format

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(self.format())


def run(
    probes: Probes | None = None,
    importer: Importer | None = None,
    versions: dict[str, str | None] | None = None,
) -> DoctorReport:
    """Examine the machine and return a :class:`DoctorReport`.

    Parameters
    ----------
    probes
        Hardware probes (fakes in tests); None asks this machine.
    importer
        ``importer(module) -> ImportOutcome``; None tries each import in a subprocess.
    versions
        Installed versions (as :func:`workbench.diagnostics.versions.stack_versions` gives them).
    """
    profile = hardware.detect(probes) if probes is not None else hardware.detect()
    versions = stack_versions() if versions is None else dict(versions)
    checks = [_check_platform(profile), _check_compute_capability(profile), _check_driver(profile, versions)]
    checks += _check_imports(profile, importer or subprocess_import)
    checks += [_check_polars(profile, versions), _check_free_memory(profile), _check_configuration(),
               _check_distribution()]
    try:
        policy = memory.choose(profile)
    except ValueError as err:
        policy = None
        checks.append(Check("memory policy", False, str(err), "report this: auto should always choose a policy"))
    return DoctorReport(hardware=profile, policy=policy, versions=versions, checks=checks)


def doctor(probes: Probes | None = None, importer: Importer | None = None) -> DoctorReport:
    """The doctor's report: shown as text by a notebook cell or the REPL, once.

    Nothing is printed (a value that printed and was shown would appear twice):
    ``print(wb.doctor())`` in a script; ``.ok``, ``.checks`` and ``.to_dict()`` for code.

    Examples
    --------
    >>> import workbench as wb
    >>> wb.doctor()  # doctest: +SKIP
    workbench doctor
    ...
    """
    return run(probes, importer)

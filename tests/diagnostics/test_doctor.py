"""The doctor on fake profiles, its subprocess import check, and the versions."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import polars as pl
import pytest

from tests.profiles import GB, NvmlDevice, NvmlInfo, PROFILES, probes
from workbench.diagnostics.checks import GPU_MODULES, POLARS_REQUIREMENT, Check, ImportOutcome, run, subprocess_import
from workbench.hardware import DriverInfo
from workbench.diagnostics.versions import DISTRIBUTIONS, show_versions, stack_versions

doctor_mod = sys.modules["workbench.diagnostics.checks"]

VERSIONS = {  # a complete CUDA 13 install, as stack_versions() reports it
    "python": "3.12.3", "workbench": "0.1.0", "polars": "1.44.2", "cudf": "26.10.2",
    "cudf-polars": "26.10.2", "cuml": "26.10.0", "rmm": "26.10.0", "rapids-cuda": "cu13",
}


def installed(module: str) -> ImportOutcome:
    return ImportOutcome(module, True, "26.10.2")


def not_installed(module: str) -> ImportOutcome:
    return ImportOutcome(module, False, f"No module named '{module}'", missing=True)


def check(report, name) -> Check:
    (found,) = [c for c in report.checks if c.name == name]
    return found


def test_cpu_machine_is_usable():
    report = run(probes("none"), importer=not_installed, versions=VERSIONS | {"rapids-cuda": None})
    assert report.ok
    assert check(report, "platform").ok is True
    for module in GPU_MODULES:
        assert check(report, f"import {module}").ok is None  # not applicable
    data = json.loads(json.dumps(report.to_dict()))
    assert data["ok"] is True and data["hardware"]["platform"] == "cpu" and data["policy"]["mode"] == "cpu"
    assert "usable" in report.format()


def test_broken_driver_fails_with_a_fix():
    report = run(probes("broken"), importer=installed, versions=VERSIONS)
    assert not report.ok
    platform = check(report, "platform")
    assert platform.ok is False and "CUDA_ERROR_UNKNOWN (999)" in platform.detail
    assert "nvidia-smi" in platform.fix
    text = report.format()
    assert "FAIL" in text and "fix: run `nvidia-smi`" in text


def test_h100_without_cudf_names_the_extra():
    report = run(probes("h100"), importer=not_installed, versions={"polars": "1.44.2"})
    assert not report.ok
    cudf = check(report, "import cudf")
    assert cudf.ok is False and cudf.fix == "pip install 'gpu-workbench[gpu]'"
    assert report.to_dict()["checks"][3]["fix"] == "pip install 'gpu-workbench[gpu]'"


def test_cuda12_driver_without_cudf_names_the_cu12_extra():
    old = PROFILES["h100"].driver_info
    report = run(probes("h100").replace(driver_info=DriverInfo(True, version=12080, devices=old.devices)),
                 importer=not_installed, versions={"polars": "1.44.2"})
    assert check(report, "import cuml").fix == "pip install 'gpu-workbench[gpu-cu12]'"


def test_h100_with_everything_is_usable():
    report = run(probes("h100"), importer=installed, versions=VERSIONS)
    assert report.ok, report.format()
    assert all(c.ok for c in report.checks), report.format()
    assert "memory policy: async" in report.format()


def test_cu13_wheels_on_a_cuda12_driver():
    old = PROFILES["h100"].driver_info
    p = probes("h100").replace(driver_info=DriverInfo(True, version=12020, devices=old.devices))
    report = run(p, importer=installed, versions=VERSIONS)
    driver = check(report, "driver vs RAPIDS wheels")
    assert driver.ok is False and "580" in driver.fix and "gpu-cu12" in driver.fix
    ok = run(p, importer=installed, versions=VERSIONS | {"rapids-cuda": "cu12"})
    assert check(ok, "driver vs RAPIDS wheels").ok is True


def test_polars_too_new_fails():
    report = run(probes("h100"), importer=installed, versions=VERSIONS | {"polars": "1.46.0"})
    polars = check(report, "polars for the GPU engine")
    assert polars.ok is False and "1.46.0" in polars.detail
    assert polars.fix == f"pip install 'polars{doctor_mod.polars_requirement()}'"
    assert not report.ok


def test_polars_requirement_default():
    if not any(_installed(d) for d in DISTRIBUTIONS["cudf-polars"]):
        assert doctor_mod.polars_requirement() == POLARS_REQUIREMENT
    assert doctor_mod._version_ok(pl.__version__, POLARS_REQUIREMENT)
    assert not doctor_mod._version_ok("1.45.0", POLARS_REQUIREMENT)


def _installed(dist):
    from importlib import metadata

    try:
        metadata.version(dist)
    except metadata.PackageNotFoundError:
        return False
    return True


def test_low_free_memory_is_a_warning():
    nvml = NvmlInfo("580.95.05", (NvmlDevice("NVIDIA H100 80GB HBM3", PROFILES["h100"].driver_info.devices[0].uuid,
                                             80 * GB, 500 * 10**6),))
    report = run(probes("h100").replace(nvml_info=nvml), importer=installed, versions=VERSIONS)
    free = check(report, "free device memory")
    assert free.ok is False and free.severity == "warning" and "500.0 MB" in free.detail
    assert report.ok  # usable, with a warning
    assert "[WARN]" in report.format()


def test_old_gpu_fails_compute_capability():
    report = run(probes("old-gpu"), importer=installed, versions=VERSIONS)
    cc = check(report, "compute capability")
    assert cc.ok is False and "6.1" in cc.detail and cc.fix
    assert not report.ok


def test_crashing_import_reports_its_signal():
    def crashing(module):
        return ImportOutcome(module, False, f"import {module} crashed the interpreter with SIGSEGV", signal=11)

    report = run(probes("h100"), importer=crashing, versions=VERSIONS)
    cudf = check(report, "import cudf")
    assert cudf.ok is False and "SIGSEGV" in cudf.detail and "gpu-workbench[gpu]" in cudf.fix


def test_subprocess_import_real(tmp_path, monkeypatch):
    (tmp_path / "segfaults_on_import.py").write_text(
        "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    (tmp_path / "fails_on_import.py").write_text("raise ImportError('libcudf.so: cannot open shared object file')\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path))  # find_spec in this process sees them too
    crash = subprocess_import("segfaults_on_import", timeout=60)
    assert not crash.ok and crash.signal == 11 and "SIGSEGV" in crash.detail
    fail = subprocess_import("fails_on_import", timeout=60)
    assert not fail.ok and not fail.missing and "libcudf.so" in fail.detail
    assert subprocess_import("json").ok
    gone = subprocess_import("no_such_module_for_the_doctor")
    assert gone.missing and not gone.ok


def test_doctor_returns_the_report_shown_once(capsys):
    import workbench as wb

    report = doctor_mod.doctor(probes("none"), importer=not_installed)
    assert report.ok
    assert capsys.readouterr().out == ""  # nothing printed: the value shows itself, once
    assert repr(report) == str(report) == report.format()
    assert "memory policy: cpu" in repr(report)
    # the top-level function, beside the checkup module
    assert wb.doctor(probes("none"), not_installed).ok


def test_foreign_workbench_distribution_is_flagged(tmp_path):
    """The unrelated ``workbench`` from PyPI also installs ``import workbench``."""
    from workbench.diagnostics.checks import _check_distribution
    from workbench.diagnostics.versions import foreign_workbench

    ours = tmp_path / "ours" / "workbench-0.1.0.dist-info"
    ours.mkdir(parents=True)
    (ours / "METADATA").write_text("Metadata-Version: 2.1\nName: workbench\nVersion: 0.1.0\n"
                                   "Summary: A GPU-accelerated data-science workbench: polars...\n")
    assert foreign_workbench([str(tmp_path / "ours")]) is None  # an install of this one before the rename
    other = tmp_path / "other" / "workbench-0.4.2.dist-info"
    other.mkdir(parents=True)
    (other / "METADATA").write_text("Metadata-Version: 2.1\nName: workbench\nVersion: 0.4.2\n"
                                    "Summary: SageMaker workbench tools\n")
    found = foreign_workbench([str(tmp_path / "other")])
    assert found is not None and found.version == "0.4.2"
    flagged = _check_distribution(lambda: found)
    assert flagged.ok is False and "0.4.2" in flagged.detail and "cannot share one environment" in flagged.detail
    assert "pip uninstall workbench" in flagged.fix and "gpu-workbench" in flagged.fix
    assert _check_distribution(lambda: None).ok
    assert check(run(probes("none"), importer=not_installed), "distribution").ok  # this environment


def test_install_hints_use_the_distribution_name():
    report = run(probes("h100"), importer=not_installed, versions=VERSIONS)
    fixes = [c.fix for c in report.checks if c.name.startswith("import ")]
    assert fixes and all("pip install 'gpu-workbench[gpu]'" in fix for fix in fixes)


def test_cli_doctor_json_on_this_machine():
    from workbench.hardware import detect

    if detect().has_usable_gpu:
        pytest.skip("imports RAPIDS for real on a GPU machine; see the gpu tests")
    out = subprocess.run([sys.executable, "-m", "workbench", "doctor", "--json"], capture_output=True, text=True)
    data = json.loads(out.stdout)
    assert out.returncode == (0 if data["ok"] else 1)
    assert data["hardware"]["platform"] in ("cpu", "broken")


def test_stack_versions_without_importing():
    code = textwrap.dedent("""
        import json, sys
        from workbench.diagnostics.versions import stack_versions
        v = stack_versions()
        heavy = sorted(m for m in ('polars', 'cudf', 'pandas', 'sklearn', 'cupy', 'rmm') if m in sys.modules)
        print(json.dumps({'versions': v, 'imported': heavy}))
    """)
    out = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert out["imported"] == []
    versions = out["versions"]
    assert set(versions) == {"python", "rapids-cuda", *DISTRIBUTIONS}
    assert versions["polars"] == pl.__version__
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))
    assert versions == stack_versions()


def test_show_versions_is_a_dict_shown_as_one_table(capsys):
    versions = show_versions()
    assert capsys.readouterr().out == ""
    assert versions["polars"] == pl.__version__ and dict(versions) == stack_versions()
    text = repr(versions)
    assert "polars" in text and pl.__version__ in text
    assert len(text.splitlines()) == len(versions)
    assert versions["workbench"] is not None  # this checkout, installed before or after the rename

"""pyproject.toml and environment.yml agree, nothing assumes x86_64, and the built wheel
installs under its own name and runs the README's example."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> list[str]:
    """Distribution names in a requirement ('dask[distributed]>=1' -> dask, distributed)."""
    match = re.match(r"\s*([A-Za-z0-9_.-]+)(\[([^\]]+)\])?", requirement)
    base = match.group(1).lower().replace("_", "-")
    extras = [e.strip().lower() for e in match.group(3).split(",")] if match.group(3) else []
    return [base] + extras


def _project():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _environment():
    return yaml.safe_load((ROOT / "environment.yml").read_text())


def _conda_specs(env) -> dict[str, str]:
    specs = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            name = re.split(r"[<>=! ]", dep, maxsplit=1)[0].lower()
            specs[name] = dep
    return specs


def test_environment_names_every_runtime_dependency():
    specs = _conda_specs(_environment())
    missing = [n for req in _project()["dependencies"] for n in _name(req) if n not in specs]
    assert missing == [], f"environment.yml lacks runtime dependencies {missing}"


def test_environment_is_rapids_for_cuda_13_on_python_312():
    env = _environment()
    assert env["channels"][:2] == ["rapidsai", "conda-forge"]
    specs = _conda_specs(env)
    assert specs["rapids"] == "rapids=26.10"
    assert specs["cuda-version"] == "cuda-version=13.0"
    assert specs["python"] == "python=3.12"
    assert "<1.45" in specs["polars"]
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip_section  # the package itself, with pip


def test_polars_pin_matches_the_gpu_engine():
    polars = next(r for r in _project()["dependencies"] if r.startswith("polars"))
    assert ">=1.35" in polars and "<1.45" in polars


def test_gpu_extras_are_rapids_26_10_for_both_cuda_majors():
    extras = _project()["optional-dependencies"]
    for extra, suffix in (("gpu", "cu13"), ("gpu-cu12", "cu12")):
        names = {_name(r)[0]: r for r in extras[extra]}
        for package in ("cudf", "cudf-polars", "dask-cudf", "cuml", "rmm"):
            assert f"{package}-{suffix}" in names, (extra, package)
            assert "26.10" in names[f"{package}-{suffix}"]
        assert "dask-cuda" in names


X86_ONLY = re.compile(r"\b(mkl|intel-openmp|icc_rt|x86_64|amd64|win_amd64)\b", re.I)


def test_nothing_is_x86_only():
    project = _project()
    requirements = project["dependencies"] + [r for reqs in project["optional-dependencies"].values()
                                              for r in reqs]
    assert [r for r in requirements if X86_ONLY.search(r)] == []
    assert not X86_ONLY.search((ROOT / "environment.yml").read_text())
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "x86_64" not in setup and "uname -m" not in setup


def test_license_and_type_marker_are_shipped():
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License") and "Version 2.0, January 2004" in text
    assert _project()["license"] == "Apache-2.0"  # an SPDX expression
    assert (ROOT / "workbench" / "py.typed").exists()
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in data["workbench"]


def test_distribution_name_is_free_of_the_unrelated_workbench():
    # "workbench" on PyPI is someone else's project: every install line names ours.
    assert _project()["name"] == "gpu-workbench"
    assert _project()["scripts"] == {"workbench": "workbench.cli:main"}
    readme = (ROOT / "README.md").read_text()
    lines = re.findall(r"pip install [^\n`]*", readme)
    assert lines and all("gpu-workbench" in line or " -e " in line or "'.[" in line for line in lines), lines


def _readme_example() -> str:
    return re.search(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)


@pytest.mark.slow
def test_wheel_installs_under_its_name_and_runs_the_readme_example(tmp_path):
    """Build the wheel from a copy of the checkout, install it (no dependencies: those
    come from this environment through a .pth file) into a fresh venv, then run the
    README's example and ``workbench lab --help`` from outside the checkout."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split("\n")
    src = tmp_path / "src"
    for name in filter(None, files):
        if (ROOT / name).is_file():
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    pip = [sys.executable, "-m", "pip"]
    built = subprocess.run(pip + ["wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(src)],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    wheel, = (tmp_path / "dist").glob("*.whl")
    assert wheel.name.startswith("gpu_workbench-")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = zf.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Name: gpu-workbench" in metadata
    assert "workbench/py.typed" in names and any(n.endswith("/LICENSE") for n in names)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    installed = subprocess.run(pip + ["--python", str(python), "install", "-q", "--no-deps", "--no-index",
                                      str(wheel)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    env = {**os.environ, "WORKBENCH_DATA": str(tmp_path / "data"), "PYTHONPATH": ""}
    where = subprocess.run([str(python), "-c", "import workbench, importlib.metadata as m; "
                            "print(workbench.__file__); print(m.version('gpu-workbench'))"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(purelib) and where.split()[1] == tomllib.loads(
        (ROOT / "pyproject.toml").read_text())["project"]["version"]
    example = tmp_path / "example.py"
    example.write_text(_readme_example())
    ran = subprocess.run([str(python), str(example)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "memory policy" in ran.stdout and "transfers" in ran.stdout
    lab = subprocess.run([str(venv / "bin" / "workbench"), "lab", "--help"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=60)
    assert lab.returncode == 0 and "Usage: workbench lab" in lab.stdout, lab.stderr

"""pyproject.toml and environment.yml agree, and nothing assumes x86_64."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

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

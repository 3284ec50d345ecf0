"""The dataset catalog: one TOML file per dataset, and checking a request against it.

The catalog lives in the repository's top-level ``datasets/`` folder and is installed as
``workbench/catalog`` inside the wheel (``pyproject.toml`` maps one onto the other), so
it is found the same way from a clone, an editable install and a wheel.
"""

from __future__ import annotations

import builtins
import functools
import importlib
import math
import tomllib
from pathlib import Path
from types import ModuleType

from workbench.errors import WorkbenchError

_PACKAGE = Path(__file__).resolve().parent.parent  # .../workbench


class UnknownDatasetError(WorkbenchError, ValueError):
    """A dataset name that is not in the catalog."""


def catalog_dir() -> Path:
    for candidate in (_PACKAGE / "catalog", _PACKAGE.parent / "datasets"):
        if candidate.is_dir() and any(candidate.glob("*.toml")):
            return candidate
    raise FileNotFoundError(
        f"the dataset catalog was not found in {_PACKAGE / 'catalog'} (installed) nor in "
        f"{_PACKAGE.parent / 'datasets'} (a clone); reinstall workbench"
    )


@functools.lru_cache(maxsize=1)
def _entries(directory: Path) -> dict[str, dict]:
    out = {}
    for path in sorted(directory.glob("*.toml")):
        with open(path, "rb") as f:
            entry = tomllib.load(f)
        if entry.get("name") != path.stem:
            raise ValueError(f"{path}: 'name' must be {path.stem!r} (got {entry.get('name')!r})")
        out[path.stem] = entry
    return out


def entries() -> dict[str, dict]:
    return _entries(catalog_dir())


def entry(name: str) -> dict:
    found = entries()
    if name not in found:
        raise UnknownDatasetError(f"unknown dataset {name!r}; available: {', '.join(sorted(found))}")
    return found[name]


def generator(name: str) -> ModuleType:
    """The module that makes the dataset's tables: ``plan(rows, seed, **params)`` and ``label``."""
    return importlib.import_module(entry(name)["generator"])


def _number(name: str, what: str, value, kind: str):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name}: {what} must be a number (got {value!r})")
    if kind == "int":
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            raise ValueError(f"{name}: {what} must be a whole number (got {value!r})")
        return int(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: {what} must be finite (got {value!r})")
    return float(value) if isinstance(value, float) and not value.is_integer() else int(value)


def _fmt(x) -> str:
    return f"{x:_}" if isinstance(x, int) else f"{x:g}"


def _in_range(name: str, what: str, value, spec: dict) -> None:
    lo, hi = spec.get("min"), spec.get("max")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bounds = f"between {_fmt(lo)} and {_fmt(hi)}" if lo is not None and hi is not None else (
            f"at least {_fmt(lo)}" if lo is not None else f"at most {_fmt(hi)}"
        )
        raise ValueError(f"{name}: {what} must be {bounds} (got {value!r})")


def resolve(name: str, rows, params: dict) -> tuple[int, dict]:
    """The row count and full parameters (defaults filled in), checked against the catalog."""
    e = entry(name)
    rows = e["rows"]["default"] if rows is None else rows
    rows = _number(name, "rows", rows, "int")
    _in_range(name, "rows", rows, e["rows"])
    spec = e.get("params", {})
    unknown = sorted(set(params) - set(spec))
    if unknown:
        valid = ", ".join(sorted(spec)) or "none"
        raise ValueError(f"{name}: unknown parameter(s) {', '.join(unknown)}; valid parameters: {valid}")
    out = {}
    for key, s in spec.items():
        value = params.get(key, s["default"])
        if s["type"] == "bool":
            if not isinstance(value, bool):
                raise TypeError(f"{name}: parameter {key!r} must be true or false (got {value!r})")
        else:
            value = _number(name, f"parameter {key!r}", value, s["type"])
            _in_range(name, f"parameter {key!r}", value, s)
        out[key] = value
    return rows, out


def parse_param(name: str, text: str) -> tuple[str, object]:
    """``"k=100"`` -> ("k", 100), typed by the catalog (for the command line)."""
    key, sep, raw = text.partition("=")
    key, raw = key.strip(), raw.strip()
    spec = entry(name).get("params", {})
    if not sep or key not in spec:
        valid = ", ".join(f"{k}=<{s['type']}>" for k, s in spec.items()) or "none"
        raise ValueError(f"{name}: expected KEY=VALUE with KEY one of its parameters ({valid}); got {text!r}")
    kind = spec[key]["type"]
    if kind == "bool":
        truth = dict.fromkeys(("1", "true", "yes", "on"), True) | dict.fromkeys(("0", "false", "no", "off"), False)
        if raw.lower() not in truth:
            raise ValueError(f"{name}: parameter {key!r} must be true or false (got {raw!r})")
        return key, truth[raw.lower()]
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}: parameter {key!r} must be a number (got {raw!r})") from None
    return key, value


def names() -> builtins.list[str]:
    return sorted(entries())

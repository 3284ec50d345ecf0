"""Byte counts for people: one formatter for the whole package.

Decimal units (``80.0 GB``), as GPU vendors and ``--gpu-budget 2GB`` count them;
``dask.utils.format_bytes`` would say ``74.51 GiB`` for the same H100, which no spec
sheet prints, so the workbench keeps this one small function. Reading sizes needs no
function of ours: ``dask.utils.parse_bytes`` reads ``"80 GB"`` as 80e9 and ``"1 GiB"``
as 2**30, and reads back what this prints (tests/test_sizes.py).

>>> format_bytes(80 * 10**9)
'80.0 GB'
>>> format_bytes(1_250_000_000, 2)
'1.25 GB'
>>> format_bytes(None)
'unknown'
"""

from __future__ import annotations


def format_bytes(n: float | None, digits: int = 1) -> str:
    """Bytes in decimal units (``80.0 GB``, ``31.4 MB``); ``unknown`` for None."""
    if n is None:
        return "unknown"
    for unit, size in (("TB", 10**12), ("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if abs(n) >= size:
            return f"{n / size:.{digits}f} {unit}"
    return f"{n:.0f} B"

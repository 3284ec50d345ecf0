"""Memory budgets: bytes, a size string or a fraction of the device, read once here."""

from __future__ import annotations

import re

from workbench.sizes import format_bytes

ALIGN = 256  # RMM pools want sizes in multiples of 256 bytes
_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9, "t": 10**12, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}
_BUDGET_RE = re.compile(r"^\s*(-?[0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z%]*)\s*$", re.IGNORECASE)


def align(n: int) -> int:
    """``n`` rounded down to RMM's 256-byte granularity (at least 256)."""
    return max(n // ALIGN * ALIGN, ALIGN)


def parse_budget(value: int | float | str, device_memory: int | None) -> int:
    """A memory budget in bytes.

    Parameters
    ----------
    value
        Bytes (``8_000_000_000``), a size string (``"8GB"``, ``"8GiB"``, ``"512MB"``;
        kB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB of 1024), a fraction
        ``0 < x <= 1`` of ``device_memory`` (``0.5``, ``"0.5"``) or a percentage (``"50%"``).
    device_memory
        The memory the budget is taken from; None when unknown (fractions then fail).

    Returns
    -------
    int
        Bytes, ``0 < budget <= device_memory``.

    Raises
    ------
    ValueError
        When the value cannot be read, is not positive, or exceeds ``device_memory``.

    Examples
    --------
    >>> parse_budget("8GB", 80 * 10**9)
    8000000000
    >>> parse_budget("1GiB", None)
    1073741824
    >>> parse_budget(0.25, 80 * 10**9)
    20000000000
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"budget {value!r} is not a size: give bytes, a string like '8GB', or a fraction 0 < x <= 1")
    m = _BUDGET_RE.match(str(value))
    unit = m.group(2).lower() if m else None
    if unit not in _UNITS and unit != "%":
        raise ValueError(f"budget {value!r} is not a size: use bytes or a number with one of "
                         f"{', '.join(u for u in _UNITS if u)} (e.g. '8GB', '512MiB'), a fraction or a percentage")
    digits, number, fraction = m.group(1), float(m.group(1)), None
    if unit == "%":
        fraction = number / 100
    elif digits.lstrip("-").isdigit():
        nbytes = int(digits) * _UNITS[unit]  # exact, however large
    elif _UNITS[unit] > 1:
        nbytes = int(number * _UNITS[unit])  # "1.5GB"
    elif 0 < number <= 1:
        fraction = number  # 0.5, "0.5"
    elif number.is_integer():
        nbytes = int(number)  # 8e9
    else:
        raise ValueError(f"budget {value!r} is neither a fraction 0 < x <= 1 nor a whole number of bytes")
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise ValueError(f"budget {value!r} as a fraction must be within 0 < x <= 1")
        if device_memory is None:
            raise ValueError(f"budget {value!r} is a fraction of device memory, which is unknown here: give bytes (e.g. '8GB')")
        nbytes = int(fraction * device_memory)
    if nbytes <= 0:
        raise ValueError(f"budget {value!r} is {nbytes} bytes: it must be more than 0")
    if device_memory is not None and nbytes > device_memory:
        raise ValueError(
            f"budget {value!r} is {nbytes} bytes ({format_bytes(nbytes)}), more than the "
            f"{device_memory} bytes ({format_bytes(device_memory)}) of memory there is"
        )
    return nbytes

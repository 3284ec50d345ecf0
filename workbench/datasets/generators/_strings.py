"""Identifier strings ("id001", "id0000000042", "id42") built as Arrow buffers, not per row.

Formatting a billion strings one by one in Python would dominate generation; these
write the digits of a whole column at once with NumPy and hand the buffers to Arrow.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

# "00".."99" as little-endian uint16 words: two digits per store
_PAIRS = np.array([(48 + i // 10) | ((48 + i % 10) << 8) for i in range(100)], dtype=np.uint16)
_ID = ord("i") | (ord("d") << 8)
_POW10 = np.array([10**i for i in range(1, 20)], dtype=np.uint64)


def _validity(valid: np.ndarray | None) -> pa.Buffer | None:
    if valid is None or valid.all():
        return None
    return pa.py_buffer(np.packbits(valid, bitorder="little"))


def padded_ids(values: np.ndarray, width: int, valid: np.ndarray | None = None) -> pa.Array:
    """``"id%0{width}d" % v`` for every value (width even, values < 10**width)."""
    if width % 2:
        raise ValueError("padded_ids needs an even width")
    n = len(values)
    words = 1 + width // 2
    out = np.empty((n, words), dtype=np.uint16)
    out[:, 0] = _ID
    small = width <= 9 or (n == 0 or int(values.max()) < 2**32)
    x = values.astype(np.uint32 if small else np.uint64, copy=True)
    hundred = x.dtype.type(100)
    for k in range(words - 1, 0, -1):
        q = x // hundred
        out[:, k] = _PAIRS[x - q * hundred]
        x = q
    stride = 2 * words
    offsets = np.arange(0, stride * (n + 1), stride, dtype=np.int64 if stride * n >= 2**31 else np.int32)
    kind = pa.large_string() if offsets.dtype == np.int64 else pa.string()
    arr = pa.Array.from_buffers(kind, n, [_validity(valid), pa.py_buffer(offsets), pa.py_buffer(out)])
    return arr.cast(pa.string()) if kind == pa.large_string() else arr


def decimal_ids(values: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """``"id%d" % v`` for every value < 10**10 (no padding: as db-benchmark's join tables).

    The digits are written zero-padded, then the leading zeros are squeezed out with one
    boolean selection over the byte matrix.
    """
    n = len(values)
    v = np.asarray(values)
    if n and int(v.max()) >= 10**10:
        raise ValueError("decimal_ids supports values below 10**10")
    padded = padded_ids(v, 10)
    matrix = np.frombuffer(padded.buffers()[2], dtype=np.uint8, count=12 * n).reshape(n, 12)
    digits = np.searchsorted(_POW10, v.astype(np.uint64), side="right") + 1
    lengths = (digits + 2).astype(np.int64)
    if valid is not None:
        lengths[~valid] = 0
    first = 12 - lengths + np.where(lengths > 0, 2, 0)  # first digit kept (after the "id")
    col = np.arange(12, dtype=np.int16)
    keep = (col >= first[:, None]) | (col < np.where(lengths > 0, 2, 0)[:, None])
    buf = matrix[keep]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    kind = pa.string() if offsets[-1] < 2**31 else pa.large_string()
    if kind == pa.string():
        offsets = offsets.astype(np.int32)
    arr = pa.Array.from_buffers(kind, n, [_validity(valid), pa.py_buffer(offsets), pa.py_buffer(buf)])
    return arr if kind == pa.string() else arr.cast(pa.string())


def sorted_dictionary(k: int, width: int = 3) -> pa.Array:
    """``"id%0{width}d" % i`` for i in 1..k, in string (not numeric) order.

    Indices drawn uniformly into it are uniform over the values, and index order is the
    order in which a sort by the string column puts them ("id1000" < "id999").
    """
    numbers = np.arange(1, k + 1, dtype=np.int64)
    strings = np.char.add("id", np.char.zfill(numbers.astype(str), width))
    return pa.array(np.sort(strings), type=pa.string())

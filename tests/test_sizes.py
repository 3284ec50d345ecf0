"""Byte counts for people: decimal units, read back by dask's parser to the same bytes."""

from __future__ import annotations

from dask.utils import parse_bytes
from hypothesis import given
from hypothesis import strategies as st

from workbench.sizes import format_bytes


@given(st.integers(min_value=1000, max_value=10**15))
def test_formatted_sizes_read_back_within_the_rounding(n):
    text = format_bytes(n, 2)
    assert abs(parse_bytes(text) - n) <= 0.005 * n, text


@given(st.integers(min_value=0, max_value=999))
def test_small_counts_are_bytes(n):
    assert format_bytes(n) == f"{n} B"

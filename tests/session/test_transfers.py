"""The transfer log: records, totals, summaries, validation."""

from __future__ import annotations

import pytest

from workbench.sizes import format_bytes
from workbench.session.transfers import TransferLog


def test_totals_by_direction_and_kind():
    log = TransferLog()
    log.record("a", 1000, "host-to-device", "pinned", 0.001)
    log.record("b", 500, "host-to-device", "pageable", 0.001)
    log.record("c", 200, "device-to-host", "pageable", 0.0)
    assert log.total_bytes() == 1700
    assert log.total_bytes("host-to-device") == 1500
    assert log.total_bytes(kind="pageable") == 700
    assert log[0].gbps == pytest.approx(1e-3)
    assert len(log.to_polars()) == 3
    assert "host-to-device pinned: 1 copies" in log.summary()
    mark = len(log)
    log.record("d", 1, "host-to-device", "mapped", 0.0)
    assert [t.what for t in log.since(mark)] == ["d"]
    # a zero-copy view is not a copy
    assert log.total_bytes() == 1700 and log.total_bytes(kind="mapped") == 1
    assert "1 zero-copy views" in log.summary()


def test_untimed_copies_do_not_inflate_the_bandwidth():
    log = TransferLog()
    log.record("timed", 1_000_000_000, "device-to-host", "pageable", 0.5)
    log.record("result", 9_000_000_000, "device-to-host", "pageable", 0.0)
    assert "10.00 GB, 2.0 GB/s" in log.summary()


def test_bad_direction_or_kind_is_refused():
    log = TransferLog()
    with pytest.raises(ValueError, match="direction"):
        log.record("a", 1, "sideways", "pinned", 0.0)
    with pytest.raises(ValueError, match="kind"):
        log.record("a", 1, "host-to-device", "teleported", 0.0)


def test_timed_records_the_block():
    log = TransferLog()
    with log.timed("x", 10, "device-to-host", "pinned"):
        pass
    assert log[0].seconds >= 0 and log.total_bytes() == 10


def test_format_bytes():
    assert format_bytes(999) == "999 B"
    assert format_bytes(1.5e9, 2) == "1.50 GB"
    assert format_bytes(80e9) == "80.0 GB"
    assert format_bytes(None) == "unknown"

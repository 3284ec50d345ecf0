"""Frame and collect on a real GPU: pinning, views, residency, invalidation, accounting."""

from __future__ import annotations

import datetime as dt
import gc

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from workbench.frame import residency

import workbench as wb
from tests.queries import GPU_UNSUPPORTED, NO_DATES, QUERIES
from workbench.errors import GPUFallbackWarning, PinnedLimitWarning

pytestmark = pytest.mark.gpu

N = 4_000_000  # 32 MB per float64 column: large enough to be pinned


def _table(n=N, seed=0):
    rng = np.random.default_rng(seed)
    return pa.table({
        "k": pa.array(rng.integers(0, 100, n), pa.int32()),
        "s": pa.array([f"id{i:03d}" for i in range(100)], pa.large_string()).take(
            pa.array(rng.integers(0, 100, n))),
        "v": rng.normal(size=n),
        "w": pa.array(np.where(rng.random(n) < 0.1, np.nan, rng.random(n)), from_pandas=True),
    })


@pytest.fixture
def session():
    return wb.init(backend="gpu")


def test_frames_are_pinned_in_place_and_unpinned_when_freed(session):
    from workbench.frame import device as _device

    assert session.hardware.platform == "discrete" and session.policy.host_buffers == "pinned"
    before = _device.pinned_bytes()
    frame = wb.Frame.from_arrow(_table())
    assert _device.pinned_bytes() - before >= 3 * N * 4
    locations = dict(frame.placement().select("column", "location").iter_rows())
    assert locations["v"] == "host pinned" and locations["s"] == "host pinned"
    del frame
    gc.collect()
    assert _device.pinned_bytes() == before


def test_to_cudf_copies_once_at_pinned_speed_then_stays_resident(session):
    frame = wb.Frame.from_arrow(_table())
    mark = len(session.transfers)
    first = frame.to_cudf()
    copies = session.transfers.since(mark)
    # every buffer once, but all-valid null masks, which libcudf does not need
    needed = sum(b.size for col in frame.to_arrow().columns
                 for i, b in enumerate(col.chunk(0).buffers())
                 if b is not None and (i > 0 or col.null_count))
    assert needed - 64 <= sum(t.nbytes for t in copies) <= needed
    assert {t.kind for t in copies if t.nbytes >= 1 << 20} == {"pinned"}
    assert all(t.direction == "host-to-device" for t in copies)
    mark = len(session.transfers)
    second = frame.to_cudf()
    assert session.transfers.since(mark) == []  # resident: no copy the second time
    assert "device resident" in frame.placement()["location"][0]
    expected = frame.to_arrow()
    for got in (first, second):
        table = got.to_arrow(preserve_index=False)
        for name in expected.column_names:
            assert table.column(name).to_pylist()[:1000] == expected.column(name).to_pylist()[:1000]
        assert got["v"].sum() == pytest.approx(float(np.sum(expected.column("v").to_numpy())))


def test_mapped_view_over_pinned_memory_is_zero_copy(session):
    """Kernels read a registered host buffer in place.

    Only whole pages inside a buffer are registered, so the buffer here is page-aligned
    and a whole number of pages long: all of it is readable by the GPU.
    """
    from workbench.frame import device as _device, pages as _pages

    n = 1 << 22  # 32 MiB of float64
    raw = np.empty(n * 8 + _pages.PAGE, dtype=np.uint8)
    skip = -raw.ctypes.data % _pages.PAGE
    values = raw[skip:skip + n * 8].view(np.float64)
    values[:] = np.random.default_rng(0).normal(size=n)
    frame = wb.Frame.from_arrow(pa.table({"v": pa.array(values)}))
    arr = frame.to_arrow().column("v").chunk(0)
    assert arr.buffers()[1].address == values.ctypes.data  # the frame holds this memory
    assert _device.is_pinned(arr.buffers()[1].address, n * 8)
    mark = len(session.transfers)
    col = _device.to_column(arr, "v", zero_copy=True, log=session.transfers)
    assert col.data().ptr == arr.buffers()[1].address  # the GPU reads the host buffer itself
    assert all(t.kind == "mapped" for t in session.transfers.since(mark))
    import cudf

    total = cudf.DataFrame.from_pylibcudf(
        __import__("pylibcudf").Table([col]), {"columns": ["v"]})["v"].sum()
    assert total == pytest.approx(float(np.sum(values)))


ARROW_TYPES = {
    "int64": (pa.int64(), st.integers(-2**63, 2**63 - 1)),
    "int16": (pa.int16(), st.integers(-2**15, 2**15 - 1)),
    "float32": (pa.float32(), st.floats(width=32, allow_nan=False)),
    "bool": (pa.bool_(), st.booleans()),
    "string": (pa.large_string(), st.text(max_size=6)),
    "short_string": (pa.string(), st.text(max_size=6)),
    "date": (pa.date32(), st.dates(dt.date(1970, 1, 1), dt.date(2100, 1, 1))),
    "ts": (pa.timestamp("us"), st.datetimes(dt.datetime(1970, 1, 1), dt.datetime(2100, 1, 1))),
}


@st.composite
def tables(draw):
    kinds = draw(st.lists(st.sampled_from(sorted(ARROW_TYPES)), min_size=1, max_size=5))
    rows = draw(st.integers(0, 50))
    cols = {}
    for i, kind in enumerate(kinds):
        typ, values = ARROW_TYPES[kind]
        cols[f"c{i}"] = pa.array(draw(st.lists(st.one_of(st.none(), values),
                                               min_size=rows, max_size=rows)), type=typ)
    return pa.table(cols)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(tables())
def test_gpu_views_equal_the_host_data(table):
    wb.init(backend="gpu")
    frame = wb.Frame.from_arrow(table)
    got = frame.to_cudf().to_arrow(preserve_index=False)
    for name in table.column_names:
        column = got.column(name)
        if pa.types.is_date32(table.column(name).type):
            column = column.cast(pa.date32())  # cudf has no date type: dates come back as datetimes
        assert column.to_pylist() == table.column(name).to_pylist(), name


def test_collect_on_gpu_equals_cpu_and_copies_each_column_once(session):
    frame = wb.Frame.from_arrow(_table())
    mark = len(session.transfers)
    for name in NO_DATES:
        if name in GPU_UNSUPPORTED:
            continue
        query = QUERIES[name]
        expected = query(frame.to_polars().lazy()).collect()
        assert_frame_equal(wb.collect(query(frame.lazy()), raise_on_fail=True), expected,
                           check_exact=False, rel_tol=1e-9), name
    copied = [t for t in session.transfers.since(mark) if t.direction == "host-to-device"]
    # k, s, v, w each copied once (strings: offsets + chars), whatever the number of queries
    assert {t.what.split(".")[0] for t in copied} == {"k", "s", "v", "w"}
    assert len([t for t in copied if t.what == "v.data"]) == 1
    mark = len(session.transfers)
    wb.collect(QUERIES["sum_by_k"](frame.lazy()), raise_on_fail=True)
    assert [t for t in session.transfers.since(mark) if t.direction == "host-to-device"] == []
    assert not any("could not run" in m for _, m in session.log)


def test_gpu_results_stay_on_the_device_until_a_cpu_view(session):
    frame = wb.Frame.from_arrow(_table(1_000_000))
    q = QUERIES["by_string"]
    wb.collect(q(frame.lazy()), raise_on_fail=True)  # the inputs become resident
    mark = len(session.transfers)
    result = wb.collect(q(frame.lazy()), as_frame=True, raise_on_fail=True)
    assert isinstance(result, wb.Frame) and result.shape == (100, 3)
    assert set(result.placement()["location"]) == {"device only (host copy on first CPU view)"}
    chained = wb.collect(result.lazy().filter(pl.col("len") > 0).select(pl.col("v").max()),
                         as_frame=True, raise_on_fail=True)
    gdf = result.to_cudf()
    assert session.transfers.since(mark) == []  # nothing crossed the bus yet
    assert gdf["len"].sum() == 1_000_000
    expected = q(frame.to_polars().lazy()).collect()
    assert_frame_equal(result.to_polars(), expected)
    moved = [(t.what, t.direction) for t in session.transfers.since(mark)]
    assert moved == [("query result", "device-to-host")]  # once, on the first CPU view
    assert all(loc.endswith("device resident") for loc in result.placement()["location"])
    assert chained.to_polars().item() == pytest.approx(expected["v"].max())


def test_to_cupy_of_a_gpu_result_needs_no_copy(session):
    frame = wb.Frame.from_arrow(_table(200_000))
    q = frame.lazy().group_by("k").agg(pl.col("v").sum(), pl.col("w").max()).sort("k")
    result = wb.collect(q, as_frame=True, raise_on_fail=True)
    mark = len(session.transfers)
    m = result.to_cupy(["k", "v"])
    assert session.transfers.since(mark) == []
    np.testing.assert_allclose(m.get(), result.to_numpy(["k", "v"]), rtol=1e-6)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(tables())
def test_gpu_results_come_back_equal(table):
    wb.init(backend="gpu")
    frame = wb.Frame.from_arrow(table)
    result = wb.collect(frame.lazy().select(pl.all()), as_frame=True, raise_on_fail=True)
    assert_frame_equal(result.to_polars(), frame.to_polars())
    assert result.to_arrow().num_rows == table.num_rows


def test_a_large_gpu_result_comes_back_through_pinned_staging(session):
    from workbench.frame import device as _device

    frame = wb.Frame.from_arrow(_table(2_000_000))
    before = _device.pinned_bytes()
    result = wb.collect(frame.lazy().select(pl.all(), (pl.col("v") * 2).alias("v2"),
                                            (pl.col("k") > 50).alias("big")),
                        as_frame=True, raise_on_fail=True)
    mark = len(session.transfers)
    assert_frame_equal(result.to_polars(), frame.to_polars().with_columns(
        (pl.col("v") * 2).alias("v2"), (pl.col("k") > 50).alias("big")))
    (fetch,) = session.transfers.since(mark)
    # booleans are converted by libcudf: the whole fetch then counts as pageable
    assert (fetch.what, fetch.direction, fetch.kind) == ("query result", "device-to-host", "pageable")
    locations = dict(result.placement().select("column", "location").iter_rows())
    assert locations["v2"] == locations["s"] == "host plain + device resident"
    assert _device.pinned_bytes() == before  # staging buffers are not frames' pins
    empty = pl.col("s").str.slice(0, 0).alias("e")  # every string empty: no characters at all
    numbers = wb.collect(frame.lazy().select("k", "v", "w", "s", empty), as_frame=True,
                         raise_on_fail=True)
    mark = len(session.transfers)
    assert_frame_equal(numbers.to_polars(), frame.to_polars().select("k", "v", "w", "s", empty))
    (fetch,) = session.transfers.since(mark)
    # k, v, w and s (int32 offsets + 5 characters a row)
    assert fetch.kind == "pinned" and fetch.nbytes >= 2_000_000 * (4 + 8 + 8 + 9)


SLICES = [(0, 1), (3, 700), (511, 513), (512, 4096), (4099, 150_000), (199_000, 1000)]


@pytest.mark.parametrize("mapped", [False, True], ids=["copied", "mapped"])
def test_row_slices_move_only_their_rows(session, mapped):
    """The streaming executor's chunks: a slice's buffers, copied or seen in place.

    Views need every buffer registered, and buffers under 1 MiB are not: the mapped
    case has no nulls (no validity buffers) and 300k rows (every buffer over 1 MiB).
    """
    import pylibcudf as plc

    from workbench.frame import device as _device

    rng = np.random.default_rng(1)
    n = 300_000
    nulls = None if mapped else rng.random(n) < 0.2
    table = pa.table({
        "i": pa.array(rng.integers(0, 9, n), pa.int64(), mask=nulls),
        "s": pa.array(["x" * int(x * 20) for x in rng.random(n)], pa.large_string(), mask=nulls),
        "t": pa.array(rng.integers(0, 10**9, n), pa.timestamp("ms")),
        "u": pa.array([f"{x:.3f}" for x in rng.random(n)], pa.string()),
    })
    frame = wb.Frame.from_arrow(table)
    host = frame.to_arrow()
    if mapped:
        assert all(_device.is_pinned(b.address, b.size) for col in host.columns
                   for b in col.chunk(0).buffers() if b is not None)
    for start, length in SLICES:
        mark = len(session.transfers)
        for name in host.column_names:
            arr = host.column(name).chunk(0).slice(start, length)
            col = _device.to_column(arr, name, zero_copy=mapped, log=session.transfers)
            back = plc.Table([col]).to_arrow(metadata=[name]).column(0)
            assert back.to_pylist() == arr.to_pylist(), (name, start, length)
        moves = session.transfers.since(mark)
        assert {t.kind for t in moves} <= ({"mapped"} if mapped else {"pinned", "pageable"})
        if not mapped:  # the slice's bytes, plus at most 511 rows before it
            moved = sum(t.nbytes for t in moves)
            assert moved <= host.slice(start, length).nbytes + 511 * 60 + 1024, (start, length)


def test_data_larger_than_the_budget_streams_in_pinned_chunks():
    """A 128 MB budget (64 MB resident): 4e6 rows (~80 MB a query) stream in 8 MB chunks."""
    out = _run_py("""
        import numpy as np, polars as pl, pyarrow as pa, workbench as wb
        session = wb.init(backend="gpu", budget="128MB", strict=True)
        rng = np.random.default_rng(0)
        n = 4_000_000
        frame = wb.Frame.from_arrow(pa.table({
            "k": pa.array(rng.integers(0, 50, n), pa.int32()),
            "s": pa.array([f"id{i:03d}" for i in range(50)], pa.large_string()).take(
                pa.array(rng.integers(0, 50, n))),
            "v": rng.normal(size=n), "w": rng.normal(size=n)}))
        queries = {
            "by_int": lambda lf: lf.group_by("k").agg(pl.col("v").median(), pl.col("w").max()).sort("k"),
            "by_string": lambda lf: lf.group_by("s").agg(pl.len(), pl.col("v").mean()).sort("s"),
            "total": lambda lf: lf.select(pl.col("v").sum(), pl.col("w").max(), pl.len()),
        }
        same, copies = {}, []
        for name, q in queries.items():
            mark = len(session.transfers)
            got = wb.collect(q(frame.lazy()))
            copies += [t for t in session.transfers.since(mark) if t.direction == "host-to-device"]
            want = q(frame.to_polars().lazy()).collect()
            same[name] = got.equals(want) or all(
                np.allclose(got[c].to_numpy(), want[c].to_numpy()) if want[c].dtype.is_float()
                else got[c].to_list() == want[c].to_list() for c in want.columns)
        print(json.dumps({"same": same, "log": [m for _, m in session.log],
                          "chunks": len([t for t in copies if t.what == "v.data"]),
                          "bytes_v": sum(t.nbytes for t in copies if t.what == "v.data"),
                          "kinds": sorted({t.kind for t in copies if t.nbytes >= 1 << 20})}))
    """)
    assert out["same"] == {"by_int": True, "by_string": True, "total": True}
    # the median splits by key: v is cut into the partitions in one pass of 8 MB
    # chunks, then each partition goes to the device once; the simple group-by and
    # the total stream (one pass each)
    splits = [int(m.split(" into ")[1].split()[0]) for m in out["log"] if "split by key into" in m]
    assert len(splits) == 1 and splits[0] >= 2, out["log"]
    assert any("streaming executor" in m for m in out["log"])
    assert out["chunks"] >= 8 + splits[0]
    passes = 2 + 2  # the split's two, the streaming queries' one each
    assert out["bytes_v"] <= passes * (4_000_000 * 8 + 512 * 8 * out["chunks"])  # each row once a pass
    assert out["kinds"] in (["pinned"], [])


def _run_py(code: str) -> dict:
    """Run code in a fresh interpreter (its own memory policy); it prints one JSON line last."""
    import json
    import subprocess
    import sys
    import textwrap

    proc = subprocess.run([sys.executable, "-c", "import json\n" + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_changed_frame_is_never_stale_on_the_gpu(session):
    frame = wb.Frame.from_arrow(_table(100_000))
    q = lambda: wb.collect(frame.lazy().select(pl.col("v").sum()), raise_on_fail=True).item()
    before = q()
    assert frame.to_cudf()["v"].sum() == pytest.approx(before)
    frame["v"] = pl.Series(np.ones(100_000))
    mark = len(session.transfers)
    assert q() == 100_000
    assert frame.to_cudf()["v"].sum() == 100_000
    recopied = {t.what for t in session.transfers.since(mark) if t.direction == "host-to-device"}
    assert recopied == {"v.data"}  # only the changed column travels again


def test_to_cupy_builds_the_matrix_from_resident_columns(session):
    frame = wb.Frame.from_arrow(_table(200_000))
    frame.to_cudf(["k", "v"])
    mark = len(session.transfers)
    m = frame.to_cupy(["k", "v"])
    assert session.transfers.since(mark) == []
    np.testing.assert_allclose(m.get(), frame.to_numpy(["k", "v"]))
    with pytest.raises(TypeError, match="(?i)'s'.*string"):
        frame.to_cupy(["s"])


def test_pinned_limit_leaves_the_frame_in_plain_memory_with_a_warning(session):
    session.ensure_gpu()
    limit = session.policy.pinned_limit
    # The applied policy object itself is changed (a new one could not be applied).
    object.__setattr__(session.policy, "pinned_limit", 1)
    try:
        with pytest.warns(PinnedLimitWarning, match="not pinned"):
            frame = wb.Frame.from_arrow(_table(1_000_000))
    finally:
        object.__setattr__(session.policy, "pinned_limit", limit)
    assert set(frame.placement()["location"]) == {"host plain"}
    mark = len(session.transfers)
    frame.to_cudf(["v"])
    # the 8 MB column is not registered, so it crosses through the staging buffers
    assert {t.kind for t in session.transfers.since(mark)} == {"pinned"}


def test_inputs_larger_than_the_resident_limit_stream(session):
    frame = wb.Frame.from_arrow(_table(1_000_000))
    cache = residency.cache(session)
    cache.clear()
    limit = cache.limit
    cache.limit = 1_000_000  # far smaller than the 16 MB the query needs
    try:
        q = QUERIES["sum_by_k"]
        got = wb.collect(q(frame.lazy()), raise_on_fail=True)
    finally:
        cache.limit = limit
    assert_frame_equal(got, q(frame.to_polars().lazy()).collect(), check_exact=False, rel_tol=1e-9)
    # beyond the resident limit the group-by splits by key (or streams)
    assert any("split by key" in m or "streaming executor" in m for _, m in session.log)


def test_unsupported_query_falls_back_or_raises(session):
    frame = wb.Frame.from_arrow(_table(1000))
    q = frame.lazy().select(pl.col("v").map_batches(lambda s: s * 2, return_dtype=pl.Float64))
    with pytest.warns(GPUFallbackWarning):
        out = wb.collect(q)
    assert out["v"][0] == pytest.approx(2 * frame.to_arrow().column("v")[0].as_py())
    with pytest.raises(Exception, match="GPU"):
        wb.collect(q, raise_on_fail=True)


def test_ml_fit_on_gpu_matches_cpu(session):
    rng = np.random.default_rng(0)
    n = 200_000
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    frame = wb.Frame.from_polars(pl.DataFrame({
        "x1": x1, "x2": x2, "label": (x1 - x2 + rng.normal(scale=0.5, size=n) > 0).astype(np.int32)}))
    gpu = wb.ml.fit(frame, "label", ["x1", "x2"], backend="gpu")
    cpu = wb.ml.fit(frame, "label", ["x1", "x2"], backend="cpu")
    assert gpu.backend == "gpu" and type(gpu.model).__module__.startswith("cuml")
    assert abs(gpu.metrics["accuracy"] - cpu.metrics["accuracy"]) < 0.01

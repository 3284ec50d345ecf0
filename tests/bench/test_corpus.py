"""The query corpus benchmark (benchmarks/corpus.py) at a tiny scale.

On the CPU: every query runs on polars in memory, polars streaming and
``workbench.collect``, their answers agree (the runner's own check, which is tested to
catch wrong answers), a failing or slow query is recorded without stopping the run,
and the JSON has its fields. Speed is never asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings, strategies as st

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
import corpus  # noqa: E402
import corpus_queries as C  # noqa: E402

SCALE = 3000
# the corpus writes .explode() as users do; polars 1.44 warns about a default changing in 2.0
pytestmark = pytest.mark.filterwarnings("ignore:In Polars 2.0:DeprecationWarning")


@pytest.fixture(scope="module")
def data_home(tmp_path_factory):
    return tmp_path_factory.mktemp("corpus-data")


@pytest.fixture
def data(data_home, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(data_home))
    return data_home


@pytest.fixture(scope="module")
def tiny_tables():
    import workbench.datasets as wd

    return {name: pl.from_arrow(wd.generate(ds, rows=SCALE, table=table, **params)).lazy()
            for name, (ds, table, params) in C.TABLES.items()}


# --- the corpus itself -----------------------------------------------------------------


def test_corpus_covers_what_it_is_for():
    assert len(C.QUERIES) >= 22
    tags = {t for q in C.QUERIES.values() for t in q.tags}
    assert tags == set(C.TAGS)  # every kind of query is there at least once
    assert all(q.description and q.name == name for name, q in C.QUERIES.items())
    assert any(len(q.tables) >= 3 for q in C.QUERIES.values())


def test_each_query_reads_only_the_tables_it_names(tiny_tables):
    for q in C.QUERIES.values():
        only = {t: tiny_tables[t] for t in q.tables}
        q(only).collect_schema()  # a table it uses but does not name: KeyError


def test_bad_tags_and_tables_are_refused():
    with pytest.raises(ValueError, match="unknown tags.*'nope'"):
        C.query("d", tags=("nope",), tables=("g",))
    with pytest.raises(ValueError, match="unknown tables.*'nope'"):
        C.query("d", tags=("groupby",), tables=("nope",))(lambda t: t["nope"])


# --- the answer check --------------------------------------------------------------------

rows = st.lists(st.tuples(st.integers(-1000, 1000), st.floats(-1e6, 1e6, allow_nan=False)),
                min_size=2, max_size=40, unique_by=lambda r: r[0])


def _frame(rs):
    return pl.DataFrame({"k": [r[0] for r in rs], "v": [r[1] for r in rs]},
                        schema={"k": pl.Int64, "v": pl.Float64})


@settings(max_examples=60, deadline=None)
@given(rows, st.randoms(use_true_random=False))
def test_compare_rows_as_a_set_unless_ordered(rs, rnd):
    ref = _frame(rs)
    shuffled = list(rs)
    rnd.shuffle(shuffled)
    got = _frame(shuffled)
    assert corpus.compare(ref, got, ordered=False) is None
    if shuffled != rs:
        assert corpus.compare(ref, got, ordered=True) is not None
    assert corpus.compare(ref, got.reverse(), ordered=False) is None


@settings(max_examples=60, deadline=None)
@given(rows, st.data())
def test_compare_tolerates_rounding_and_catches_wrong_values(rs, data):
    ref = _frame(rs)
    i = data.draw(st.integers(0, len(rs) - 1))
    v = rs[i][1]
    close = ref.with_columns(pl.when(pl.col("k") == rs[i][0]).then(v * (1 + 1e-9)).otherwise("v").alias("v"))
    assert corpus.compare(ref, close, ordered=True) is None
    wrong = ref.with_columns(pl.when(pl.col("k") == rs[i][0]).then(v * 1.01 + 1).otherwise("v").alias("v"))
    assert corpus.compare(ref, wrong, ordered=False) is not None
    assert "rows" in corpus.compare(ref, ref.head(len(rs) - 1), ordered=False)
    assert "columns" in corpus.compare(ref, ref.select("v", "k"), ordered=False)


def test_dtype_differences_are_noted_not_failed():
    ref = pl.DataFrame({"k": [1, 2], "n": [3, 4]})
    entry = {"results": {"polars": {"status": "ok"}, "workbench": {"status": "ok"}}}
    corpus.check(entry, {"polars": ref, "workbench": ref.with_columns(pl.col("n").cast(pl.UInt32))}, False)
    assert entry["results"]["workbench"]["check"] == "ok"
    assert "UInt32" in entry["results"]["workbench"]["notes"][0]


# --- the runner ------------------------------------------------------------------------


def test_every_query_agrees_on_every_engine_and_the_json_has_its_fields(data, tmp_path):
    out = tmp_path / "res.json"
    res = corpus.run_corpus(SCALE, out, budget="2GB", backend="cpu", runs=1, say=lambda _: None)
    assert json.loads(out.read_text()) == json.loads(json.dumps(res, default=str))
    for q in res["queries"]:
        for engine in corpus.ENGINES:
            rec = q["results"][engine]
            assert rec["status"] == "ok", (q["name"], engine, rec)
            assert rec["check"] in ("ok", "reference")
            assert rec["seconds"] >= 0 and isinstance(rec["rows"], int)
        assert q["reference"] == "polars"
        assert q["results"]["workbench"]["where"] == "cpu"
        assert set(q["results"]["workbench"]["device"]) >= {"peak_bytes", "held_before_bytes",
                                                            "nvml_peak_bytes"}
        # on the CPU nothing crosses a bus
        assert q["results"]["workbench"]["moved"]["host-to-device"] == {"bytes": 0, "seconds": 0,
                                                                        "copies": 0}
    assert [q["name"] for q in res["queries"]] == list(C.QUERIES)
    for key in ("date", "machine", "hardware", "versions", "session", "data_seconds", "load",
                "total_bytes", "tables_over_budget", "summary", "engines"):
        assert key in res, key
    assert res["versions"]["polars"] == pl.__version__
    assert res["budget_asked_bytes"] == 2_000_000_000 and res["budget"] is None  # a CPU session
    assert set(res["tables"]) == set(C.TABLES)
    for name, info in res["tables"].items():
        assert info["rows"] > 0 and info["bytes"] > 0 and info["parquet_bytes"] > 0, name
    assert res["total_bytes"] == sum(i["bytes"] for i in res["tables"].values())
    s = res["summary"]
    assert s["answered_by_all"] == len(C.QUERIES) and s["on_gpu"] == 0 and s["where"] == {"cpu": len(C.QUERIES)}
    assert set(s["totals_seconds"]) == set(corpus.ENGINES)
    assert set(s["ratios"]) == {"polars / workbench", "polars-streaming / workbench"}


def _sleepy(seconds):
    def slow(s: pl.Series) -> pl.Series:
        import time

        time.sleep(seconds)
        return s
    return slow


def test_a_failing_or_slow_query_is_recorded_and_the_run_goes_on(data, tmp_path):
    broken = C.Query("broken", "a column that is not there", ("groupby",), ("g",),
                     lambda t: t["g"].select(pl.col("nope").sum()))
    slow = C.Query("slow", "a query slower than the timeout", ("groupby",), ("g",),
                   lambda t: t["g"].select(pl.col("v1").map_batches(_sleepy(2.0)).sum()))
    fine = C.QUERIES["top_groups"]
    out = tmp_path / "res.json"
    res = corpus.run_corpus(SCALE, out, queries=[broken, slow, fine], backend="cpu", runs=2, timeout=0.3,
                            say=lambda _: None)
    by = {q["name"]: q["results"] for q in res["queries"]}
    for engine in corpus.ENGINES:
        assert by["broken"][engine]["status"] == "error"
        assert "nope" in by["broken"][engine]["error"]
        assert by["slow"][engine]["status"] == "timeout" and by["slow"][engine]["times"] == []
    assert by["top_groups"]["polars"]["status"] == "ok"
    assert by["top_groups"]["polars-streaming"]["check"] == "ok"
    # the abandoned workbench call still runs: the next one is not started beside it
    assert by["top_groups"]["workbench"]["status"] == "skipped"
    assert res["summary"]["answered_by_all"] == 0
    assert json.loads(out.read_text())["queries"][-1]["name"] == "top_groups"


FEW = ["join4_big", "semi_join_big", "top2_per_group", "running_total_by_zone", "filter_most_rows"]


def test_the_command_end_to_end(data, tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    env = {**__import__("os").environ, "WORKBENCH_DATA": str(data)}
    p = subprocess.run([sys.executable, str(BENCH / "corpus.py"), "--scale", str(SCALE), "--budget", "2GB",
                        "--out", str(out), "--backend", "cpu", "--runs", "1", "--queries", ",".join(FEW),
                        "--profile", str(tmp_path / "prof")],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    (path,) = out.glob("corpus-*.json")
    res = json.loads(path.read_text())
    assert [q["name"] for q in res["queries"]] == FEW
    assert res["summary"]["answered_by_all"] == len(FEW)
    assert "total (answered by all)" in p.stdout and "join4_big" in p.stdout
    # each workbench query profiled in the thread that ran it: collect is in its summary
    for name in FEW:
        assert "collect" in (tmp_path / "prof" / f"{name}.txt").read_text()


def test_data_only_makes_the_tables_and_runs_nothing(data, tmp_path, capsys):
    assert corpus.main(["--scale", str(SCALE), "--data-only"]) == 0
    printed = capsys.readouterr().out
    for name in C.TABLES:
        assert name in printed
    assert f"{SCALE:,} rows" in printed
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["--scale", "many"], "--scale"),
    (["--scale", "5"], "at least 10"),
    (["--scale", "1e4", "--queries", "join3_totals,nope"], "unknown nope"),
    (["--scale", "1e4", "--engines", "duckdb"], "--engines"),
    (["--scale", "1e4", "--budget", "-1GB"], "--budget"),
    (["--scale", "1e4", "--runs", "0"], "--runs"),
    (["--scale", "1e4"], "--out is required"),
])
def test_bad_arguments_are_usage_errors(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        corpus.main(args + ([] if "required" in message else ["--out", str(tmp_path / "r.json")]))
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


@pytest.mark.gpu
def test_on_the_gpu_under_a_budget_every_answer_is_right(data, tmp_path):
    # its own process: a memory budget is applied once per process
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(BENCH / "corpus.py"), "--scale", "2e5", "--budget",
                           "256MB", "--backend", "gpu", "--runs", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["budget"] == 256_000_000
    for q in res["queries"]:
        rec = q["results"]["workbench"]
        assert rec["status"] == "ok", (q["name"], rec)
        assert rec["where"] in ("gpu", "gpu-split", "gpu-streaming"), (q["name"], rec["where"])
        assert rec["device"]["peak_bytes"] is not None and rec["device"]["nvml_peak_bytes"] is not None
    # the frames cross to the device (once when they stay resident, per query when not)
    assert sum(q["results"]["workbench"]["moved"]["host-to-device"]["bytes"] for q in res["queries"]) > 0
    assert res["summary"]["peak_device_bytes"] > 0

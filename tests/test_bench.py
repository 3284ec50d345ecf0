"""The benchmark suite at a tiny size: answers agree, wrong ones are caught, files are written.

Timings are never asserted (speed is shown by benchmarks/results, not by tests).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workbench.bench import engines as E
from workbench.bench import report, runner
from workbench.bench.questions import questions

ROWS = 10_000
CPU = ["polars", "duckdb", "pandas"]
if E.get_engine("workbench").available() is None:
    CPU.append("workbench")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The tiny groupby and join tables, made by workbench.datasets into a temporary cache."""
    root = tmp_path_factory.mktemp("wbdata")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_DATA", str(root))
        yield {"groupby": runner.make_data("groupby", ROWS, k=10),
               "join": runner.make_data("join", ROWS)}


def _suite(task, data, **kw):
    kw.setdefault("engines", CPU)
    kw.setdefault("progress", None)
    kw.setdefault("isolate", False)
    return runner.run_suite(task, ROWS, paths=data[task], **kw)


def _status(res):
    return {(r["engine"], r["question"]): r["status"] for r in res["results"]}


@pytest.fixture(scope="module")
def groupby_result(data):
    return _suite("groupby", data, k=10)


def test_cpu_engines_agree_on_groupby(groupby_result):
    st = _status(groupby_result)
    assert len(st) == len(CPU) * 10
    assert all(v == "ok" for v in st.values()), {k: v for k, v in st.items() if v != "ok"}
    for r in groupby_result["results"]:
        assert len(r["times"]) == 2 and r["rows"] > 0 and set(r["chk"]) == set(
            questions("groupby", [r["question"]])[0].chk)
    for name in CPU:
        assert groupby_result["engines"][name]["load_seconds"] >= 0


def test_cpu_engines_agree_on_join(data):
    res = _suite("join", data)
    st = _status(res)
    assert len(st) == len(CPU) * 5
    assert all(v == "ok" for v in st.values()), {k: v for k, v in st.items() if v != "ok"}
    # the left join keeps every x row; the inner joins keep fewer
    rows = {r["question"]: r["rows"] for r in res["results"] if r["engine"] == "polars"}
    assert rows["q3"] == res["tables"]["x"]["rows"] >= rows["q2"]


class _Planted(E.PolarsEngine):
    """polars CPU with q1's answer off by 1%: the check must catch it."""

    name = "planted"
    label = "planted"

    def run(self, q):
        ans = super().run(q)
        if q.id == "q1":
            import polars as pl

            ans = ans.with_columns(pl.col("v1_sum") * 1.01)
        return ans


@pytest.fixture
def planted():
    E.register("planted", _Planted)
    yield
    E.unregister("planted")


def test_planted_wrong_answer_is_flagged_and_not_counted(data, planted, tmp_path):
    res = _suite("groupby", data, engines=["polars", "planted"], question_ids=["q1", "q2", "q3"])
    st = _status(res)
    assert st[("planted", "q1")].startswith("wrong: sum(v1_sum)")
    assert st[("planted", "q2")] == st[("planted", "q3")] == "ok"
    s = report.summary(res)
    assert s["planted"]["answered"] == 2 and s["planted"]["speedup_over"] == 2
    md = report.markdown(res)
    assert "✗ wrong" in md and "(2/3)" in md
    rec = next(r for r in res["results"] if r["engine"] == "planted" and r["question"] == "q1")
    assert rec["times"]  # the time is kept, but only as a wrong answer's time


def test_chk_tolerance():
    ref = (10, {"a": 1000.0, "z": 0.0})
    assert runner.chk_matches((10, {"a": 1004.9, "z": 1e-9}), ref)[0]
    assert not runner.chk_matches((10, {"a": 1005.1, "z": 0.0}), ref)[0]
    assert not runner.chk_matches((11, {"a": 1000.0, "z": 0.0}), ref)[0]
    assert not runner.chk_matches((10, {"a": 1000.0, "z": 0.1}), ref)[0]


@pytest.mark.skipif(E.get_engine("cudf").available() is None, reason="cudf runs here")
def test_unavailable_engine_is_reported_not_raised(data):
    res = _suite("groupby", data, engines=["polars", "cudf", "polars-gpu"],
                 question_ids=["q1"])
    st = _status(res)
    assert st[("cudf", "q1")].startswith("unavailable: ")
    assert st[("polars-gpu", "q1")].startswith("unavailable: ")
    assert st[("polars", "q1")] == "ok"


def test_size_that_does_not_fit_is_refused(data):
    res = _suite("groupby", data, engines=CPU, question_ids=["q1"], ram_bytes=10_000)
    for name in CPU:
        st = res["engines"][name]["status"]
        assert st.startswith("refused: needs ~") and "available" in st
    assert all(r["status"].startswith("refused") and not r["times"] for r in res["results"])


def test_skipped_engine_keeps_its_reason(data):
    res = _suite("groupby", data, engines=["polars", "pandas"], question_ids=["q1"],
                 skip={"pandas": "time budget"})
    assert res["engines"]["pandas"]["status"] == "skipped: time budget"


def test_isolated_engine_and_timeout(data):
    res = _suite("groupby", data, engines=["polars", "duckdb"], question_ids=["q1", "q9"],
                 isolate=True, timeout=None)
    assert set(_status(res).values()) == {"ok"}
    assert res["isolated"] is True
    res = _suite("groupby", data, engines=["polars"], question_ids=["q1"], isolate=True,
                 timeout=0.001)
    assert _status(res)[("polars", "q1")].startswith("timeout")


def test_results_files(groupby_result, tmp_path):
    files = report.write_all([groupby_result], tmp_path)
    (js,) = files["json"]
    doc = json.loads(Path(js).read_text())
    for key in ("machine", "date", "task", "rows", "tables", "engines", "results", "runs"):
        assert key in doc
    m = doc["machine"]
    assert {"cpu", "logical_cores", "ram_bytes", "gpus", "versions"} <= set(m)
    assert doc["engines"]["polars"]["versions"]["polars"]
    r = doc["results"][0]
    assert {"engine", "question", "status", "times", "chk", "rows",
            "host_peak_bytes"} <= set(r)
    assert Path(js).name.startswith("bench-groupby-1e4-")
    md = Path(files["markdown"]).read_text()
    assert "| q10 |" in md and "speed-up vs polars CPU" in md
    assert Path(files["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.tmp*"))


def test_cli(data, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from workbench.bench.cli import bench

    monkeypatch.setenv("WORKBENCH_DATA", str(Path(data["groupby"]["x"]).parents[1]))
    out = tmp_path / "out"
    res = CliRunner().invoke(bench, ["--rows", "10000", "--k", "10", "--engines",
                                     "polars,duckdb", "--questions", "q1,q2", "--out", str(out),
                                     "--no-isolate"])
    assert res.exit_code == 0, res.output
    assert "| q1 |" in res.output and "duckdb" in res.output
    assert len(list(out.glob("bench-groupby-1e4-*.json"))) == 1
    assert list(out.glob("*.md")) and list(out.glob("*.png"))
    bad = CliRunner().invoke(bench, ["--engines", "nope", "--out", str(out)])
    assert bad.exit_code != 0 and "unknown engine" in bad.output


# --- on a GPU ----------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("engine", ["cudf", "polars-gpu", "workbench"])
def test_gpu_engines_answer_groupby(data, engine):
    res = _suite("groupby", data, engines=["polars", engine], isolate=True)
    bad = {k: v for k, v in _status(res).items() if v != "ok"}
    assert not bad, bad


@pytest.mark.gpu
@pytest.mark.parametrize("engine", ["cudf", "polars-gpu", "workbench"])
def test_gpu_engines_answer_join(data, engine):
    res = _suite("join", data, engines=["polars", engine], isolate=True)
    bad = {k: v for k, v in _status(res).items() if v != "ok"}
    assert not bad, bad

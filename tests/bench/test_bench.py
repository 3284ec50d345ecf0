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
CPU = ["polars", "polars-streaming", "duckdb", "pandas"]
if E.get_engine("workbench").available() is None:
    CPU.append("workbench")
#: the CPU engines that hold the whole table in memory (polars-streaming does not)
IN_MEMORY = [e for e in CPU if e != "polars-streaming"]


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


@pytest.mark.parametrize("na", [0, 10])
def test_gpu_formulations_ask_the_same_question(na):
    """q8 and q9 as the GPU polars engines run them answer as polars' top_k and corr do."""
    import polars as pl

    import workbench as wb
    from workbench.bench.engine_base import polars_chk

    x = wb.datasets.load("h2o_groupby", rows=20_000, k=10, na=na, seed=na).to_polars().lazy()
    for q in questions("groupby"):
        if q.polars_gpu is None:
            continue
        want, got = q.polars({"x": x}).collect(), q.polars_gpu({"x": x}).collect()
        n_want, s_want = polars_chk(want, q.chk)
        n_got, s_got = polars_chk(got, q.chk)
        assert n_got == n_want, q.id
        for c in q.chk:
            assert s_got[c] == pytest.approx(s_want[c], rel=1e-9), (q.id, c)
        if q.id == "q8":  # the very same values per group, not only the same sums
            key = ["id6", "largest2_v3"]
            assert got.sort(key).equals(want.select(key).sort(key))
        else:
            assert got.filter(pl.col("r2").is_nan()).height == want.filter(
                pl.col("r2").is_nan() | pl.col("r2").is_null()).height


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
    res = _suite("groupby", data, engines=IN_MEMORY, question_ids=["q1"], ram_bytes=10_000)
    for name in IN_MEMORY:
        st = res["engines"][name]["status"]
        assert st.startswith("refused: needs ~") and "available" in st
    assert all(r["status"].startswith("refused") and not r["times"] for r in res["results"])


def test_streaming_is_the_reference_when_polars_is_refused(data):
    res = _suite("groupby", data, engines=["polars", "polars-streaming", "duckdb"],
                 question_ids=["q1", "q10"], ram_bytes=10_000)
    st = _status(res)
    assert st[("polars", "q1")].startswith("refused: needs ~")
    # DuckDB needs the table in memory too; polars CPU streaming reads it in batches
    assert st[("polars-streaming", "q1")] == st[("polars-streaming", "q10")] == "ok"
    assert res["reference"] == "polars-streaming"
    choice = res["reference_choice"]
    assert choice["timed"] and choice["why"].startswith("polars CPU refused: needs ~")
    md = report.markdown(res)
    assert "Answers checked against polars CPU streaming" in md
    assert "speed-up vs polars CPU streaming" in md


def test_streaming_is_listed_and_checked_against_polars(groupby_result):
    # its answers (q1-q10 here, join q1-q5 in test_cpu_engines_agree_on_join) passed
    # the checks against polars CPU, which stays the reference when it runs
    assert groupby_result["reference"] == "polars"
    assert groupby_result["reference_choice"] == {"engine": "polars", "timed": True,
                                                   "why": "polars CPU ran"}
    header = report.markdown(groupby_result).splitlines()[4]
    assert header.startswith("| question | polars CPU | polars CPU streaming |"), header


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

    from workbench.cli.bench import bench

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


def test_planted_wrong_streaming_answer_is_caught(data, planted_streaming):
    res = _suite("join", data, engines=["polars", "planted-streaming"], question_ids=["q1", "q5"])
    st = _status(res)
    assert st[("planted-streaming", "q1")].startswith("wrong: sum(v1)")
    assert st[("planted-streaming", "q5")] == "ok"


class _PlantedStreaming(E.PolarsStreamingEngine):
    """polars CPU streaming with join q1's v1 off by 1%."""

    name = "planted-streaming"

    def run(self, q):
        ans = super().run(q)
        if q.id == "q1":
            import polars as pl

            ans = ans.with_columns(pl.col("v1") * 1.01)
        return ans


@pytest.fixture
def planted_streaming():
    E.register("planted-streaming", _PlantedStreaming)
    yield
    E.unregister("planted-streaming")


# --- a GPU memory budget ---------------------------------------------------------------


def test_gpu_budget_option_lands_in_the_results(data, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from workbench.cli.bench import bench

    monkeypatch.setenv("WORKBENCH_DATA", str(Path(data["groupby"]["x"]).parents[1]))
    out = tmp_path / "out"
    res = CliRunner().invoke(bench, ["--rows", "10000", "--k", "10", "--engines",
                                     "polars,polars-streaming", "--questions", "q1",
                                     "--gpu-budget", "2GB", "--out", str(out), "--no-isolate"])
    assert res.exit_code == 0, res.output
    (js,) = out.glob("bench-groupby-1e4-*.json")
    doc = json.loads(js.read_text())
    assert doc["gpu_budget"] == 2_000_000_000
    assert ", GPU budget 2 GB —" in res.output and "polars CPU streaming" in res.output
    res = CliRunner().invoke(bench, ["--rows", "10000", "--k", "10", "--engines", "polars",
                                     "--questions", "q1", "--gpu-budget", "512MiB", "--out",
                                     str(out), "--no-isolate", "--name", "mib"])
    assert res.exit_code == 0, res.output
    assert "GPU budget: 536870912 bytes" in res.output


@pytest.mark.parametrize("value, says", [
    ("lots", "is not a size"),
    ("0", "must be more than 0"),
    ("-2GB", "must be more than 0"),
    ("2 parsecs", "is not a size"),
])
def test_bad_gpu_budget_is_a_clear_error(tmp_path, value, says):
    from click.testing import CliRunner

    from workbench.cli.bench import bench

    res = CliRunner().invoke(bench, ["--gpu-budget", value, "--out", str(tmp_path)])
    assert res.exit_code == 2, res.output
    assert "Invalid value for '--gpu-budget'" in res.output and says in res.output


class _CudfHere(E.CudfEngine):
    """cudf as if it were installed: the memory check comes before anything is loaded."""

    def available(self):
        return None


@pytest.fixture
def cudf_here():
    E.register("cudf", _CudfHere)
    yield
    E.register("cudf", E.CudfEngine)


def test_cudf_over_the_budget_is_refused_with_both_sizes(data, cudf_here):
    from workbench.bench.engine_base import gb

    budget = 1_000_000  # the 1e4-row table is ~0.6 MB; cudf holds ~2.5x that
    res = _suite("groupby", data, engines=["polars", "cudf"], question_ids=["q1"],
                 device_bytes=80 * 10**9, gpu_budget=budget)
    st = res["engines"]["cudf"]["status"]
    need = res["table_bytes"] * E.CudfEngine.device_factor
    assert st == (f"refused: needs ~{gb(need)} on the device (2.5x the "
                  f"{gb(res['table_bytes'])} tables), budget {gb(budget)}"), st
    assert _status(res)[("cudf", "q1")] == st and _status(res)[("polars", "q1")] == "ok"
    assert res["gpu_budget"] == budget
    # within the budget (and the device) it is not refused
    from workbench.bench.memory import fit_reason

    assert fit_reason(E.CudfEngine(), res["table_bytes"], 10**12, 80 * 10**9,
                      budget=int(need) + 1) is None


@pytest.mark.skipif("workbench" not in CPU, reason="the workbench engine is not in this build")
def test_workbench_process_gets_the_budget(data, monkeypatch):
    monkeypatch.delenv("WORKBENCH_GPU_BUDGET", raising=False)
    res = _suite("groupby", data, engines=["polars", "workbench"], question_ids=["q1"],
                 isolate=True, gpu_budget=123_456_789)
    info = res["engines"]["workbench"]
    assert res["isolated"] and info["status"] == "ok"
    # recorded by the engine's own process: started with it, and what its session read
    assert info["inherited_environment"] == {"WORKBENCH_GPU_BUDGET": "123456789"}
    assert info["environment"] == {"WORKBENCH_GPU_BUDGET": "123456789"}
    assert _status(res)[("workbench", "q1")] == "ok"


@pytest.mark.skipif("workbench" not in CPU, reason="the workbench engine is not in this build")
def test_workbench_in_process_gets_the_budget(data, monkeypatch):
    import os

    from workbench import session

    monkeypatch.delenv("WORKBENCH_GPU_BUDGET", raising=False)
    try:
        res = _suite("groupby", data, engines=["polars", "workbench"], question_ids=["q1"],
                     gpu_budget=123_456_789)
        info = res["engines"]["workbench"]
        assert not res["isolated"] and info["status"] == "ok"
        assert info["inherited_environment"] == {"WORKBENCH_GPU_BUDGET": None}
        assert info["environment"] == {"WORKBENCH_GPU_BUDGET": "123456789"}
        assert "WORKBENCH_GPU_BUDGET" not in os.environ  # put back for what runs next
    finally:
        session._reset_for_tests()


class _OutOfMemory(E.PolarsEngine):
    """A GPU engine that runs out of device memory on q1 and falls back on q2."""

    name = "oom"
    label = "oom"
    device = "gpu"

    def run(self, q):
        self._notes = []
        if q.id == "q1":
            raise MemoryError("std::bad_alloc: out_of_memory: RMM failure at: limiting_resource_adaptor")
        if q.id == "q2":
            self._notes = ["collect could not run on the GPU and ran on the CPU instead: "
                           "MemoryError: std::bad_alloc: out_of_memory"]
        return super().run(q)

    def notes(self):
        return self._notes


@pytest.fixture
def oom():
    E.register("oom", _OutOfMemory)
    yield
    E.unregister("oom")


def test_out_of_memory_is_an_error_never_a_success(data, oom):
    res = _suite("groupby", data, engines=["polars", "oom"], question_ids=["q1", "q2", "q3"])
    st = _status(res)
    assert st[("oom", "q1")].startswith("error: out of memory on the GPU: MemoryError")
    assert st[("oom", "q2")].startswith("error: out of memory on the GPU (answered on the CPU")
    assert st[("oom", "q3")] == "ok"
    assert report.summary(res)["oom"]["answered"] == 1
    wrapped = RuntimeError("query failed")
    wrapped.__cause__ = MemoryError("out of memory")
    assert E.error_status(wrapped, gpu=True).startswith("error: out of memory on the GPU")
    assert E.error_status(ValueError("bad key")) == "error: ValueError: bad key"


# --- on a GPU ----------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("engine", ["cudf", "polars-gpu", "workbench"])
def test_gpu_engines_answer_groupby(data, engine):
    res = _suite("groupby", data, engines=["polars", engine], isolate=True)
    bad = {k: v for k, v in _status(res).items() if v != "ok"}
    assert not bad, bad
    # every question ran on the GPU: none fell back to the CPU (q8, q9 through polars_gpu)
    fell_back = {r["question"]: r["notes"] for r in res["results"]
                 if r["engine"] == engine and "notes" in r}
    assert not fell_back, fell_back


@pytest.mark.gpu
@pytest.mark.parametrize("engine", ["cudf", "polars-gpu", "workbench"])
def test_gpu_engines_answer_join(data, engine):
    res = _suite("join", data, engines=["polars", engine], isolate=True)
    bad = {k: v for k, v in _status(res).items() if v != "ok"}
    assert not bad, bad


BUDGET_ROWS = 2_000_000


@pytest.fixture(scope="module")
def data_2e6(tmp_path_factory):
    root = tmp_path_factory.mktemp("wbdata2e6")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_DATA", str(root))
        yield runner.make_data("groupby", BUDGET_ROWS)


@pytest.mark.gpu
@pytest.mark.parametrize("engine", ["polars-gpu", "workbench"])
def test_gpu_engines_answer_within_a_budget(data_2e6, engine):
    """Under --gpu-budget 256MB (the 2e6-row table is ~125 MB), every answer is right.

    q10's answer has about as many rows as the table; should it not fit the budget,
    it must say so (error: out of memory), never pass as an answer.
    """
    from workbench.memory import parse_budget

    budget = parse_budget("256MB", None)
    res = runner.run_suite("groupby", BUDGET_ROWS, paths=data_2e6, engines=["polars", engine],
                           isolate=True, gpu_budget=budget, progress=None)
    assert res["gpu_budget"] == budget and res["reference"] == "polars"
    st = _status(res)
    bad = {k: v for k, v in st.items() if v != "ok"
           and not (k == (engine, "q10") and v.startswith("error: out of memory"))}
    assert not bad, bad
    info = res["engines"][engine]
    if engine == "workbench":
        assert info["inherited_environment"] == {"WORKBENCH_GPU_BUDGET": str(budget)}
        assert info["session"]["budget"] == budget
    else:
        assert "LimitingResourceAdaptor" in info["gpu_budget"]
        peaks = [r["device_stats"]["question_peak_bytes"] for r in res["results"]
                 if r["engine"] == engine and r.get("device_stats")]
        assert peaks and max(peaks) <= budget

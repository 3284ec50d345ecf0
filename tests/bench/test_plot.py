"""The benchmark plot a student reads: labelled log ticks, one colour per engine, honest labels."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench.bench import ENGINE_COLORS, engine_label, engines, report, runner
from workbench.bench.plot import figure, log_ticks, plot


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """A real run at a tiny size: polars, DuckDB, pandas and the workbench (on the CPU here)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WORKBENCH_DATA", str(tmp_path_factory.mktemp("wbdata")))
        names = ["polars", "duckdb", "pandas", "workbench"]
        names = [n for n in names if engines.get_engine(n).available() is None]
        return runner.run_suite("groupby", 10_000, engines=names, k=10, question_ids=["q1", "q2", "q3"],
                                isolate=False, progress=None)


@given(st.floats(1e-4, 1e4), st.floats(1e-4, 1e4))
def test_log_ticks_always_label_several_values(a, b):
    lo, hi = min(a, b), max(a, b)
    ticks, (bottom, top) = log_ticks(lo, hi)
    assert bottom <= lo and top >= hi and bottom <= 0.5 and top >= 2  # 1x in sight
    assert 3 <= len(ticks) <= 12 and 1.0 in ticks
    assert all(bottom <= t <= top for t in ticks)


def test_the_axis_is_readable_and_colours_are_the_engines(result, tmp_path):
    fig = figure([result])
    fig.canvas.draw()
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert len(labels) >= 3 and "1×" in labels, labels  # not a single "1×"
    assert "speed-up vs polars CPU" in ax.get_ylabel() and "question" in ax.get_xlabel()
    assert [t.get_text() for t in ax.get_xticklabels()] == ["q1", "q2", "q3", "total"]
    legend = {t.get_text(): h for t, h in zip(ax.get_legend().get_texts(), ax.get_legend().legend_handles)}
    from matplotlib.colors import to_hex

    for name in result["engines"]:
        if name == "polars":
            continue  # the reference is the line at 1x
        handle = legend[engine_label(result, name)]
        assert to_hex(handle.get_facecolor()) == ENGINE_COLORS[name]
    png = plot([result], tmp_path / "speedups.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    assert [p.name for p in tmp_path.iterdir()] == ["speedups.png"]  # no temporary left


@pytest.mark.skipif(engines.get_engine("workbench").device == "gpu", reason="a GPU is here")
def test_the_workbench_without_a_gpu_says_it_is_polars(result):
    assert result["engines"]["workbench"]["device"] == "cpu"
    assert engine_label(result, "workbench") == "workbench (polars on CPU)"
    md = report.markdown(result)
    assert "| workbench (polars on CPU) |" in md.splitlines()[4]
    assert "not a speed-up" in md
    fig = figure([result])
    notes = [t.get_text() for t in fig.axes[0].texts]
    assert any("not a speed-up" in n for n in notes)
    assert "workbench (polars on CPU)" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]


def test_every_builtin_engine_has_its_colour():
    assert set(engines.BUILTIN) <= set(ENGINE_COLORS)
    assert len(set(ENGINE_COLORS.values())) == len(ENGINE_COLORS)


def test_the_terminal_table_is_aligned_on_a_terminal_and_markdown_in_a_pipe(result):
    import io

    from rich.console import Console

    pipe = io.StringIO()
    report.terminal_table([result], Console(file=pipe, force_terminal=False))
    assert pipe.getvalue() == report.markdown_all([result]) + "\n"  # pastes into an issue as is
    screen = io.StringIO()
    report.terminal_table([result], Console(file=screen, force_terminal=True, width=160,
                                            color_system=None))
    rows = [line for line in screen.getvalue().splitlines() if line.strip().startswith(("q1 ", "q2 ", "q3 "))]
    assert len(rows) == 3 and "|" not in "".join(rows)
    # aligned: the columns end at the same place on every row
    assert len({len(r.rstrip()) for r in rows}) == 1, rows


@pytest.mark.gpu
def test_the_workbench_on_a_gpu_is_labelled_plainly(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    res = runner.run_suite("groupby", 10_000, engines=["polars", "workbench"], k=10,
                           question_ids=["q1", "q2"], progress=None)
    assert res["engines"]["workbench"]["device"] == "gpu"
    assert engine_label(res, "workbench") == "workbench"
    assert "not a speed-up" not in report.markdown(res)
    fig = figure([res])
    assert not fig.axes[0].texts
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["workbench"]
    plot([res], tmp_path / "gpu.png")

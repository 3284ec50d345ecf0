"""wb.monitor: real snapshots of this process's memory, a table, a plot, a live widget."""

from __future__ import annotations

import time

import numpy as np
import polars as pl
import pytest

import workbench as wb


def test_snapshots_see_a_frame_arrive_in_host_memory():
    wb.init(backend="cpu")
    mon = wb.monitor(live=False)
    frame = wb.Frame.from_polars(pl.DataFrame({"v": np.arange(20_000_000, dtype=np.float64)}))
    grown = mon.update().host_rss - mon.history[0].host_rss
    assert grown >= 150_000_000  # the frame's 160 MB
    shot = mon.latest
    assert shot.device_used is None and shot.resident is None and shot.pinned is None  # CPU
    assert 0 < shot.host_rss < shot.host_available + shot.host_rss
    assert len(mon.to_dicts()) == 2 and mon.to_dicts()[1]["host_rss"] == shot.host_rss
    text = mon.table()
    assert "host memory: this process, of available" in text and "GPU memory" not in text
    assert "<table>" in mon._repr_html_()
    del frame


def test_the_plot_draws_what_was_measured():
    import matplotlib

    matplotlib.use("Agg")
    wb.init(backend="cpu")
    mon = wb.monitor(live=False)
    mon.update()
    ax = mon.plot()
    (line,) = ax.get_lines()  # on the CPU only host memory is measured
    assert line.get_label() == "host (this process)"
    assert list(line.get_ydata()) == [s.host_rss / 1e9 for s in mon.history]


def test_the_live_widget_redraws_until_stopped():
    pytest.importorskip("ipywidgets")
    wb.init(backend="cpu")
    mon = wb.monitor(interval=0.05, live=True)
    widget = mon.widget
    deadline = time.monotonic() + 10
    while len(mon.history) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(mon.history) >= 4
    mon.stop()
    assert f"memory at {mon.latest.seconds:.1f} s" in widget.value  # the last one drawn
    count = len(mon.history)
    time.sleep(0.3)
    assert len(mon.history) == count  # stopped means stopped


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), True, "1", None])
def test_a_bad_interval_is_refused(bad):
    with pytest.raises(ValueError, match="interval must be a positive number of seconds"):
        wb.monitor(interval=bad)


def test_sampling_records_the_work_as_it_happens():
    wb.init(backend="cpu")
    mon = wb.monitor(live=False)
    with mon.sampling(interval=0.02):
        held = []
        for _ in range(8):
            held.append(np.ones(5_000_000))  # 40 MB more every 50 ms
            time.sleep(0.05)
    rss = [s.host_rss for s in mon.history]
    assert len(rss) >= 10, "sampled only at the ends"
    assert rss[-1] - rss[0] >= 250_000_000
    middle = [r for r in rss[1:-1] if rss[0] + 50_000_000 < r < rss[-1] - 50_000_000]
    assert middle, "no snapshot saw the work half done"
    assert mon._thread is None and mon.interval == 1.0  # stopped, interval restored
    del held


def test_the_class_view_reads_each_students_kernel(tmp_path, monkeypatch):
    import json
    import subprocess
    import sys

    from workbench.lab.monitor import students

    code = ("import time, workbench as wb; wb.init(backend='cpu'); wb.monitor(live=False); "
            "print('up', flush=True); time.sleep(60)")
    kernels = []
    for name in ("ann", "bo"):
        env = dict(__import__("os").environ, WORKBENCH_STUDENT=name, WORKBENCH_WORKSPACE=str(tmp_path / name))
        kernels.append(subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True))
    try:
        assert [k.stdout.readline().strip() for k in kernels] == ["up", "up"]
        table = students(tmp_path)
        assert table["student"].to_list() == ["ann", "bo"]
        assert table["pid"].to_list() == [k.pid for k in kernels]
        assert table["source"].to_list() == ["session", "session"]  # no GPU: what the sessions report
        assert table["gpu_memory"].null_count() == 2 and (table["host_rss"] > 0).all()
        view = wb.monitor(students=tmp_path)
        assert "2 student kernels" in repr(view) and "ann" in view._repr_html_()
        record = json.loads(next((tmp_path / "ann").glob(".workbench/usage/ann.*.json")).read_text())
        assert len(json.dumps(record)) < 400  # small
    finally:
        for k in kernels:
            k.kill()
            k.wait()
    assert students(tmp_path).height == 0  # exited kernels drop out
    with pytest.raises(FileNotFoundError, match="no workspace folder"):
        wb.monitor(students=tmp_path / "nowhere")


@pytest.mark.gpu
def test_gpu_memory_and_resident_columns_show():
    session = wb.init(backend="gpu")
    mon = wb.monitor(live=False)
    frame = wb.Frame.from_polars(pl.DataFrame({"v": np.ones(10_000_000)}))
    frame.to_cudf()
    shot = mon.update()
    assert shot.resident >= 80_000_000 and shot.device_used >= shot.resident
    assert shot.pinned >= 80_000_000 and shot.to_device >= 80_000_000
    assert shot.device_limit == session.policy.device_memory
    assert "GPU memory (session's resource)" in mon.table()

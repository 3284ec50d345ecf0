"""``%load_ext workbench`` and what a notebook shows, in a real IPython kernel.

A notebook is built in memory and executed by nbclient in a kernel run by this
interpreter; its outputs are what a student sees: each object shown once, readable,
never ``<... object at 0x...>``, and the ``%%wb`` report of where a step ran.
"""

from __future__ import annotations

import json
import sys

import pytest

from workbench.diagnostics.notebook import CellReport, where
from workbench.session.transfers import Transfer

nbformat = pytest.importorskip("nbformat", reason="needs nbformat (pip install 'gpu-workbench[dev]')")
NotebookClient = pytest.importorskip("nbclient", reason="needs nbclient (pip install 'gpu-workbench[dev]')").NotebookClient

CELLS = [
    "%load_ext workbench",
    "import polars as pl\nimport workbench as wb\n"
    "f = wb.Frame.from_polars(pl.DataFrame({'k': ['a', 'b', 'a'], 'v': [1, 2, 3]}))\nf",
    "%%wb\nout = wb.collect(f.lazy().group_by('k').agg(pl.col('v').sum()).sort('k'), engine='gpu')\n"
    "out['v'].to_list()",
    "wb.init()",
    "wb.show_versions()",
    "wb.doctor()",
    "f.placement()",
    "%wb",
    "%%wb\n1 + 1",
]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kernel")
    spec = tmp / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python"}))
    env = {"JUPYTER_PATH": str(tmp / "jupyter"), "IPYTHONDIR": str(tmp / "ipython"),
           "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"), "WORKBENCH_DATA": str(tmp / "data")}
    mp = pytest.MonkeyPatch()
    for name, value in env.items():
        mp.setenv(name, value)
    mp.delenv("WORKBENCH_BACKEND", raising=False)
    try:
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
        NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=False,
                       resources={"metadata": {"path": str(tmp)}}).execute()
    finally:
        mp.undo()
    return {cell.source: cell.outputs for cell in nb.cells}


def _data(outputs, mime: str) -> list[str]:
    return [o["data"][mime] for o in outputs if "data" in o and mime in o["data"]]


def test_nothing_shown_is_an_object_address(executed):
    for source, outputs in executed.items():
        for text in _data(outputs, "text/plain") + _data(outputs, "text/html"):
            assert " object at 0x" not in text, (source, text)


def test_loading_the_extension_shows_the_session(executed):
    outputs = executed[CELLS[0]]
    assert len(outputs) == 1
    assert _data(outputs, "text/plain")[0].startswith("<workbench.Session backend=")
    assert "budget" in _data(outputs, "text/html")[0]


def test_a_frame_shows_shape_types_places_and_first_rows(executed):
    page = _data(executed[CELLS[1]], "text/html")[0]
    assert "3 rows × 2 columns" in page
    for part in ("<th>k</th>", "<td>String</td>", "<td>Int64</td>", "host plain", "<td>a</td>"):
        assert part in page, part


def test_the_cell_magic_says_where_the_step_ran_and_what_moved(executed):
    outputs = executed[CELLS[2]]
    shown = _data(outputs, "text/plain")
    assert shown[0] == "[4, 2]"  # the cell's own value is still shown, then the report
    report = shown[1]
    assert report.startswith("workbench: session on the CPU")
    assert "[CPU] collect could not run on the GPU" in report
    assert "nothing moved between host and device" in report
    assert "<b>workbench</b>" in _data(outputs, "text/html")[0]
    quiet = next(t for t in _data(executed[CELLS[8]], "text/plain") if t.startswith("workbench:"))
    assert "no step logged" in quiet  # a cell that ran no step reports none


def test_session_doctor_and_versions_show_once_and_short(executed):
    session = executed[CELLS[3]]
    assert len(session) == 1 and len(_data(session, "text/plain")[0]) < 200
    for cell, first in ((CELLS[4], "python"), (CELLS[5], "workbench doctor")):
        outputs = executed[cell]
        assert len(outputs) == 1 and outputs[0]["output_type"] == "execute_result", outputs
        assert _data(outputs, "text/plain")[0].startswith(first)


def test_placement_and_the_line_magic_are_readable(executed):
    table = _data(executed[CELLS[6]], "text/plain")[0]
    assert "size" in table and " B " in table
    assert "memory policy" in _data(executed[CELLS[7]], "text/plain")[0]


def test_where_reads_the_session_log_words():
    assert where("collect could not run on the GPU and ran on the CPU instead: no GPU") == "CPU"
    assert where("ml.fit logistic_regression on gpu: fit 1.2 s") == "GPU"
    assert where("ml.fit logistic_regression on cpu: fit 1.2 s") == "CPU"
    assert where("collect: split by key into 4 partitions") == ""


def test_cell_report_counts_copies_and_zero_copy_views_apart():
    copies = [Transfer("a", 2_000_000, "host-to-device", "pinned", 0.01),
              Transfer("b", 3_000_000, "host-to-device", "mapped", 0.0),
              Transfer("c", 1_000, "device-to-host", "pageable", 0.0)]
    report = CellReport("gpu", [("GPU", "ml.fit x on gpu")], copies)
    assert report.moved() == ["host-to-device: 1 copies, 2.00 MB",
                              "host-to-device: 1 zero-copy views, 3.00 MB read in place",
                              "device-to-host: 1 copies, 1.00 kB"]
    assert "[GPU] ml.fit x on gpu" in repr(report)

"""The CLI's shared parts: the row-count type, time limits, writable folders, the error line."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import click
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from workbench.cli import main
from workbench.cli.options import ROWS, RowCount, Seconds, check_writable_folder


@given(st.integers(min_value=1, max_value=10**15))
def test_rows_read_as_written_plain_or_with_underscores(n):
    assert ROWS.convert(str(n), None, None) == n
    assert ROWS.convert(f"{n:_}", None, None) == n
    assert ROWS.convert(n, None, None) == n


@given(st.integers(min_value=1, max_value=999), st.integers(min_value=0, max_value=12))
def test_rows_in_e_notation(mantissa, exponent):
    assert ROWS.convert(f"{mantissa}e{exponent}", None, None) == mantissa * 10**exponent


@pytest.mark.parametrize("text, says", [
    ("0", "at least 1 row"), ("-5", "at least 1 row"), ("1.5", "whole number"),
    ("1e-3", "whole number"), ("abc", "whole number"), ("", "whole number"),
    ("nan", "whole number"), ("inf", "whole number"), ("1e5x", "write it as 100000"),
])
def test_bad_rows_are_refused_with_the_form_that_works(text, says):
    with pytest.raises(click.BadParameter, match=says):
        ROWS.convert(text, None, None)


def test_a_minimum_is_named():
    with pytest.raises(click.BadParameter, match="at least 1_000 rows"):
        RowCount(1000).convert("999", None, None)
    assert RowCount(1000).convert("1e3", None, None) == 1000


@pytest.mark.parametrize("text", ["-5", "0", "nan", "inf", "-inf", "soon"])
def test_time_limits_must_be_finite_and_positive(text):
    with pytest.raises(click.BadParameter, match="seconds above 0"):
        Seconds().convert(text, None, None)
    assert Seconds().convert("0.5", None, None) == 0.5


def test_writable_folder_checks_create_nothing(tmp_path):
    target = tmp_path / "a" / "b"
    assert check_writable_folder(target, "--out") == target
    assert list(tmp_path.iterdir()) == []  # probed in the parent, nothing left
    afile = tmp_path / "f"
    afile.write_text("keep")
    with pytest.raises(click.BadParameter, match="is a file; give a folder"):
        check_writable_folder(afile, "--out")
    with pytest.raises(click.BadParameter, match="which is a file"):
        check_writable_folder(afile / "sub", "--out")
    assert afile.read_text() == "keep"


def test_user_errors_are_one_line_and_bugs_keep_their_traceback():
    # A user's mistake: one line, exit 2 (click's code for usage errors).
    res = CliRunner().invoke(main, ["demo", "--rows", "0"])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [
        "workbench: error: Invalid value for '--rows': '0': give at least 1_000 rows "
        "(see 'workbench demo --help')"]
    # A bug in a command: the real exception, with its traceback, as Python prints it.
    script = textwrap.dedent("""
        import sys
        from workbench.cli import main

        @main.command("broken")
        def broken():
            {}["missing"]

        main(["broken"])
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "Traceback (most recent call last)" in out.stderr and "KeyError: 'missing'" in out.stderr
    assert "workbench: error" not in out.stderr


def test_help_and_version_exit_zero():
    for args in (["--help"], ["--version"], ["lab", "--help"], ["bench", "--help"]):
        res = CliRunner().invoke(main, args)
        assert res.exit_code == 0, (args, res.output)
    lab_help = CliRunner().invoke(main, ["lab", "--help"]).output
    assert "notebooks/" not in lab_help and "installed with workbench" in lab_help
    assert "[-- JUPYTERLAB_OPTIONS...]" in lab_help

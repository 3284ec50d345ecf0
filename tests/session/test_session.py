"""init(): backends, environment variables, idempotence, errors, report."""

from __future__ import annotations

import pytest

import workbench as wb
from workbench.errors import GPUUnavailableError
from profiles import PROFILES


def test_init_is_idempotent_and_current_session_reuses_it():
    s = wb.init()
    assert wb.init() is s
    assert wb.current_session() is s
    assert wb.init(backend="cpu") is not s


def test_cpu_machine_runs_on_the_cpu_and_says_why():
    s = wb.init(probes=PROFILES["none"])
    assert s.backend == "cpu" and s.hardware.platform == "cpu"
    assert s.policy.mode == "cpu"
    assert "no usable GPU" in s.report()


def test_gpu_backend_without_a_gpu_says_why_and_how_to_fix():
    with pytest.raises(GPUUnavailableError, match="no usable GPU.*cpu.*doctor"):
        wb.init(backend="gpu", probes=PROFILES["none"])
    with pytest.raises(GPUUnavailableError, match="broken"):
        wb.init(backend="gpu", probes=PROFILES["broken"])


def test_unknown_backend_lists_the_valid_ones():
    with pytest.raises(ValueError, match="auto, cpu, gpu"):
        wb.init(backend="fast")


@pytest.mark.parametrize("name,value,match", [
    ("WORKBENCH_BACKEND", "quantum", "WORKBENCH_BACKEND"),
])
def test_malformed_environment_variables_are_named(monkeypatch, name, value, match):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=match):
        wb.init()


def test_environment_backend_is_used(monkeypatch):
    monkeypatch.setenv("WORKBENCH_BACKEND", "cpu")
    assert wb.init().requested_backend == "cpu"


def test_report_lists_policy_transfers_and_log():
    s = wb.init(backend="cpu")
    s.note("something happened")
    text = s.report()
    for part in ("backend", "platform", "memory policy", "transfers", "something happened"):
        assert part in text


def test_strict_session_raises_on_fallback():
    s = wb.init(backend="auto", strict=True)
    with pytest.raises(GPUUnavailableError):
        s.fallback("a step", "no GPU")


def test_init_returns_the_same_session_for_the_same_arguments_after_others():
    s = wb.init(budget="1GB")
    other = wb.init(backend="cpu")
    assert wb.current_session() is other
    assert wb.init(budget=10**9) is s  # the same budget, written another way
    assert wb.current_session() is s
    assert wb.init(budget="50%") is wb.init(budget=0.5)


def test_session_repr_is_short_and_says_backend_device_budget():
    s = wb.init(backend="cpu")
    text = repr(s)
    assert text.startswith("<workbench.Session backend='cpu'") and len(text) < 120
    assert "device='none'" in text and "budget='none'" in text
    page = s._repr_html_()
    assert "<table>" in page and "backend=&#x27;cpu&#x27; was asked for" in page and "transfers" in page


def test_fallback_warnings_point_at_each_call_site():
    """Python shows a warning once per location: attributed to the caller's line, two
    call sites give two warnings (and one site called twice, one)."""
    import warnings

    import polars as pl

    from workbench.errors import GPUFallbackWarning

    lf = pl.LazyFrame({"a": [1, 2]})
    wb.init(backend="cpu")
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("default")
        for _ in range(2):
            wb.collect(lf, engine="gpu")  # one call site, twice
        wb.collect(lf, engine="gpu")  # another
    fallback = [w for w in seen if issubclass(w.category, GPUFallbackWarning)]
    assert len(fallback) == 2
    assert {w.filename for w in fallback} == {__file__}
    assert fallback[0].lineno != fallback[1].lineno


def test_find_stack_level_leaves_the_package():
    import warnings

    from workbench.session import find_stack_level

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        warnings.warn("here", UserWarning, stacklevel=find_stack_level())
    assert seen[0].filename == __file__


@pytest.mark.gpu
def test_a_different_memory_policy_after_one_was_applied_is_refused_at_init():
    """In a fresh process, as a GPU policy once applied stays for the process."""
    import subprocess
    import sys

    code = ("import workbench as wb\n"
            "from workbench.errors import PolicyAlreadyAppliedError\n"
            "s = wb.init(backend='gpu', budget='1GB'); s.ensure_gpu()\n"
            "assert wb.init(backend='gpu', budget='1GB') is s\n"
            "assert wb.init(backend='gpu', budget=10**9, strict=True).policy.budget == s.policy.budget\n"
            "try:\n    wb.init(backend='gpu', budget='2GB')\nexcept PolicyAlreadyAppliedError as err:\n"
            "    assert 'restart' in str(err); print('refused')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "refused", out.stderr

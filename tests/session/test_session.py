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

"""Every WORKBENCH_* variable and init() option is checked on every machine, CPU included."""

from __future__ import annotations

import pytest

import workbench as wb
from workbench import config
from workbench.diagnostics import run
from workbench.errors import ConfigurationError


@pytest.mark.parametrize("variable,value", [
    ("WORKBENCH_BACKEND", "garbage"), ("WORKBENCH_MEMORY", "bogus"),
    ("WORKBENCH_GPU_BUDGET", "garbage"), ("WORKBENCH_GPU_BUDGET", "-1GB"),
    ("WORKBENCH_GPU_BUDGET", "10XB"), ("WORKBENCH_GPU_BUDGET", "0"), ("WORKBENCH_GPU_BUDGET", "150%"),
    ("WORKBENCH_DATA", "~nouser-here/x"),
])
def test_a_bad_variable_fails_init_and_the_doctor_on_the_cpu(monkeypatch, variable, value):
    monkeypatch.setenv(variable, value)
    if variable != "WORKBENCH_DATA":
        with pytest.raises(ConfigurationError, match=variable):
            wb.init()
    report = run(importer=lambda m: None)
    check = next(c for c in report.checks if c.name == "configuration")
    assert check.ok is False and variable in check.detail and not report.ok


@pytest.mark.parametrize("option", [dict(memory="bogus"), dict(budget="-1GB"), dict(budget="10XB"),
                                    dict(budget=0), dict(backend="tpu")])
def test_a_bad_option_is_an_error_naming_it(option):
    name = next(iter(option))
    with pytest.raises(ConfigurationError, match=name):
        wb.init(**option)


def test_good_values_pass_and_keep_their_form(monkeypatch):
    assert config.budget("8GB") == "8GB" and config.budget(0.25) == 0.25 and config.budget("50%") == "50%"
    monkeypatch.setenv("WORKBENCH_BACKEND", "cpu")
    assert config.backend() == "cpu" and config.backend("auto") == "auto"  # the option wins
    assert config.problems() == []
    assert wb.init(budget="2GB").backend == "cpu"

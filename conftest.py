"""Doctests of the package run with the tests (``testpaths`` names both); the modules
that exist to drive a GPU import its libraries at the top and are collected only
where they import."""

from workbench.optional import available

collect_ignore = [] if available("pylibcudf") else ["workbench/frame/device.py", "workbench/frame/fetch.py"]

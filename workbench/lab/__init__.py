"""Teaching labs: ``workbench lab`` (JupyterLab with a GPU budget per student) and the
live memory monitor (:func:`monitor`) the lessons show.
"""

from workbench.lab.launcher import (budget_setting, command, environment, gpu_for, launch, lessons_dir,
                                    prepare_workspace)

__all__ = ["launch", "prepare_workspace", "lessons_dir", "budget_setting", "environment", "gpu_for",
           "command", "monitor"]


def __getattr__(name: str):
    if name == "monitor":  # the monitor imports the session: load it on first use
        from workbench.lab.monitor import monitor

        return monitor
    raise AttributeError(f"module 'workbench.lab' has no attribute {name!r}")

"""Teaching labs: ``workbench lab`` (JupyterLab with a GPU budget per student) and the
live memory monitor the lessons show (:mod:`.monitor`, ``wb.monitor()``).
"""

from workbench.lab.launcher import (budget_setting, command, environment, gpu_for, launch, lessons_dir,
                                    prepare_workspace)
from workbench.lab.exercises import check, progress, strip_solutions  # noqa: E402  (stdlib only at import)

__all__ = ["launch", "prepare_workspace", "lessons_dir", "budget_setting", "environment", "gpu_for",
           "command", "check", "progress", "strip_solutions"]

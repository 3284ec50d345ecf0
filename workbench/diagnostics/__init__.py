"""Is this machine usable, and what should be fixed: ``wb.doctor()`` and ``wb.show_versions()``.

:mod:`.checks` examines the machine (hardware, policy, imports tried in a subprocess,
configuration); :mod:`.versions` reads the stack's versions from package metadata.
"""

from workbench.diagnostics.checks import DoctorReport, doctor, run
from workbench.diagnostics.versions import show_versions, stack_versions

__all__ = ["doctor", "run", "DoctorReport", "show_versions", "stack_versions"]

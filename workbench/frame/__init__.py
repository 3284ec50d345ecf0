"""Frames: one copy of a table in host memory, with zero-copy views for every library.

==================  ==============================================================
:mod:`.frame`       the :class:`Frame` and its CPU and GPU views
:mod:`.table`       Arrow tables in the Frame's form; :class:`DeviceTable`
:mod:`.scan`        the polars scan of a Frame and its feed to the GPU engine
:mod:`.residency`   device copies of columns kept between queries (LRU, bounded)
:mod:`.device`      host -> device: pinning in place, buffer copies, pylibcudf columns
:mod:`.fetch`       device -> host: GPU results through pinned staging buffers
:mod:`.pages`       which host buffers may be pinned (on the CPU, no GPU needed)
==================  ==============================================================

Only ``device`` and ``fetch`` import GPU libraries, and only when a GPU is used.
"""

from workbench.frame.frame import Frame
from workbench.frame.table import DeviceTable

__all__ = ["Frame", "DeviceTable"]

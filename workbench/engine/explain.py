"""``wb.explain(lf)``: how :func:`workbench.collect` would run a query, without running it.

>>> import polars as pl, workbench as wb
>>> _ = wb.init(backend="cpu")
>>> f = wb.Frame.from_polars(pl.DataFrame({"k": [1, 2, 1], "v": [1.0, 2.0, 3.0]}))
>>> print(wb.explain(f.lazy().group_by("k").agg(pl.col("v").median())))  # doctest: +ELLIPSIS
runs on the CPU with polars ...
  splits by key: yes (Frame 3 rows by k)
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from workbench.engine import cpu, natural
from workbench.engine import plan as plans
from workbench.engine import strategy
from workbench.engine.collect import NATURAL, RANKS_BEYOND, ranks_beyond_memory
from workbench.engine.split import gathers_too_much
from workbench.errors import BudgetTooSmall, reason
from workbench.session import current_session
from workbench.sizes import format_bytes


@dataclass(frozen=True)
class Explanation:
    """The plan :func:`workbench.collect` would choose: ``executor`` (``"cpu"``,
    ``"in-memory"``, ``"split"``, ``"streaming"``, ``"rewritten"`` into group-bys the
    GPU engine has, each run as its own plan, or ``"partial"``: of a plan the GPU engine
    refuses, the parts it accepts on the GPU, polars the rest), its ``partitions``, the
    ``inputs`` with their bytes, the host->device bytes it expects to move and why."""

    executor: str
    partitions: int
    moves: int
    reason: str
    info: plans.PlanInfo

    def __str__(self) -> str:
        if self.executor == "cpu":
            head = f"runs on the CPU with polars ({self.reason})"
        elif self.executor == "rewritten":
            head = f"runs on the GPU: {self.reason}, each piece planned as a query of its own"
        elif self.executor == "partial":
            head = f"runs in part on the GPU: {self.reason}"
        else:
            head = (f"runs on the GPU, {self.executor} executor"
                    + (f", {self.partitions} partitions" if self.partitions > 1 else "")
                    + f": {self.reason}; expects to move {format_bytes(self.moves)} host->device")
        lines = [head]
        for i in self.info.inputs:
            cols = ", ".join(i.columns) if i.columns else "?"
            lines.append(f"  input: {i.what} [{cols}] {format_bytes(i.nbytes)}")
        split = self.info.split
        if split is not None and split.by_rows:
            lines.append("  splits by key: no, by row ranges (the plan works row by row)")
        elif split is not None:
            by = "; ".join(f"{i.what} by {', '.join(split.keys[id(i.frame)])}"
                           for i in self.info.inputs if i.frame is not None and id(i.frame) in split.keys)
            lines.append(f"  splits by key: yes ({by})")
        else:
            lines.append(f"  splits by key: no ({self.info.why_not})")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html

        return "<pre>" + html.escape(str(self)) + "</pre>"


def explain(lf: pl.LazyFrame) -> Explanation:
    """How ``workbench.collect(lf)`` would run ``lf`` in this session: where, with which
    executor and partitions, over which inputs, moving how many bytes."""
    if not isinstance(lf, pl.LazyFrame):
        raise TypeError(f"explain takes a polars LazyFrame, got {type(lf).__name__}; "
                        "use frame.lazy() or df.lazy() to make one")
    session = current_session()
    info = plans.inspect(lf)
    if not session.gpu:
        streaming = cpu.streams(lf, session)
        return Explanation("cpu", 1, 0, session._why_cpu() + (f"; {streaming}" if streaming else ""), info)
    if natural.rewritable(lf, ranks=False):
        return Explanation("rewritten", 1, info.frame_bytes, NATURAL, info)
    try:
        c = strategy.choose(info, session.policy, session.resident_limit)
    except BudgetTooSmall as err:
        return Explanation("cpu", 1, 0, f"does not fit the GPU budget: {err}", info)
    if c.executor == "split" and (why := gathers_too_much(lf, info)):
        return Explanation("cpu", 1, 0, why, info)
    if ranks_beyond_memory(lf, info, c):
        return Explanation("split", c.partitions, c.moves, RANKS_BEYOND, info)
    return _refused(lf, session, info) or Explanation(c.executor, c.partitions, c.moves, c.reason, info)


def _refused(lf: pl.LazyFrame, session, info: plans.PlanInfo) -> Explanation | None:
    """What collect does with a plan both GPU executors refuse: the largest parts the
    engine accepts on the GPU, polars the rest (engine/partial.py); None when an
    executor accepts it."""
    from workbench.engine import cudf_polars, partial

    engines = [session.policy.polars_engine(executor=e, raise_on_fail=True)
               for e in ("in-memory", "streaming")]
    refused = None
    for engine in engines:  # the streaming executor runs a few operations the other lacks
        try:
            refused = cudf_polars.refusal(lf._ldf.visit(), engine)
        except Exception as err:  # noqa: BLE001 - a plan it cannot even translate
            refused = err
        if refused is None:
            return None
    why = f"the GPU engine refuses the plan ({reason(refused)})"
    if (streaming := cpu.too_large(lf, session)) is not None:
        return Explanation("cpu", 1, 0, f"{why}; {streaming}", info)
    ran = partial.parts(lf, partial.acceptor(engines[0]))
    if not ran:
        return Explanation("cpu", 1, 0, why, info)
    return Explanation("partial", 1, 0, why + "; the GPU would run the steps below the refused "
                       f"one ({', '.join(ran)}) in memory (streaming those whose inputs do not "
                       "fit), polars the rest", info)

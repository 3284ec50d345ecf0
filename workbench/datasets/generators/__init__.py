"""Deterministic dataset generators behind ``workbench.datasets``.

One module per dataset family (``h2o``, ``h2o_join``, ``taxi``), each exposing
``plan(rows, seed, **params) -> {table: TablePlan}`` and ``label(rows, **params)``; the
shared machinery is private: keyed randomness (``_rng``), string columns (``_strings``),
sorted-by-construction keys (``_sorted``), parallel Parquet writing (``_writer``), the
cache and its manifests (``_store``) and the catalog (``_catalog``).
"""

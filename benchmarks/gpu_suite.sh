#!/usr/bin/env bash
# The benchmark run on the H100 test machine, as one command, after the GPU stack is
# installed into /tmp/site (../shared/gpu/README.md):
#
#   OUT=/some/folder bash benchmarks/gpu_suite.sh            # groupby 1e7 + 1e8, join 1e7
#   OUT=/some/folder bash benchmarks/gpu_suite.sh small      # groupby 1e7 + join 1e7 (~3 min)
#   OUT=/some/folder bash benchmarks/gpu_suite.sh large      # groupby 1e8 only (~5 min)
#
# Writes into $OUT: one JSON per (task, size), h100.md, h100.png and gpu_suite.log
# (six files at most). Extra arguments go to benchmarks/gpu_suite.py.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder for the results}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
[ -d /tmp/site ] && export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONPATH="${PYTHONPATH:-$PWD}"
export WORKBENCH_DATA="${WORKBENCH_DATA:-/tmp/wb-data}"
PY="${PYTHON:-python3}"

part="${1:-all}"
[ $# -gt 0 ] && shift
case "$part" in
  all)   plan="groupby:1e7,groupby:1e8,join:1e7" ;;
  small) plan="groupby:1e7,join:1e7" ;;
  large) plan="groupby:1e8" ;;
  *)     plan="$part" ;;   # any TASK:ROWS list
esac

{
  date -u +"start %Y-%m-%dT%H:%M:%SZ"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  "$PY" -c "import cudf, cudf_polars, polars, duckdb, pandas; print('cudf', cudf.__version__, 'polars', polars.__version__, 'duckdb', duckdb.__version__, 'pandas', pandas.__version__)"
  # pandas at 1e8 takes ~6 min by itself (two runs): recorded as skipped, not run.
  # The polars GPU engine at 1e8 is capped so that the whole run ends inside 10 minutes.
  "$PY" benchmarks/gpu_suite.py --out "$OUT" --plan "$plan" --name h100 \
    --skip "pandas@1e8=time budget" --timeout "polars-gpu@1e8=200" --timeout "=240" "$@"
  date -u +"end %Y-%m-%dT%H:%M:%SZ"
} 2>&1 | tee "$OUT/gpu_suite.log"

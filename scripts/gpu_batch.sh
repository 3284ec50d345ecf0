#!/usr/bin/env bash
# The GPU checks, run on a machine where RAPIDS is on PYTHONPATH (e.g. /tmp/site):
#   OUT=/folder bash scripts/gpu_batch.sh doctor tests notebooks demo held handoff formulations \
#       suite-small|large|all|budget|budget-1e8 training corpus scaleout
# Everything printed goes to $OUT/batch.log; JSON results beside it.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder for the results}"
mkdir -p "$OUT"
[ -d /tmp/site ] && export PYTHONPATH="/tmp/site:$PWD"
export PYTHONUNBUFFERED=1 WORKBENCH_DATA="${WORKBENCH_DATA:-/tmp/wb-data}"
run() {
  for stage in "$@"; do
    echo "=== $stage $(date -u +%H:%M:%S)"
    case "$stage" in
      doctor)
        timeout 180 python3 -m workbench doctor --json > "$OUT/doctor.json"
        echo "doctor --json exit $?"
        timeout 180 python3 -m workbench doctor ;;
      tests)
        timeout 420 python3 -m pytest -m gpu tests/ -q -p no:cacheprovider -o addopts="-ra" ;;
      notebooks)  # the lessons top to bottom in a real kernel (nbclient, ipykernel brought along)
        timeout 400 python3 -m pytest tests/test_notebooks.py -q -p no:cacheprovider -o addopts="-ra" ;;
      demo)
        timeout 240 python3 -m workbench demo ;;
      held)  # groupby 1e8, in memory: polars CPU, cudf and the workbench side by side
        OUT="$OUT/suite" timeout 500 bash benchmarks/gpu_suite.sh groupby:1e8 --engines polars,cudf,workbench ;;
      handoff)
        timeout 400 python3 benchmarks/frame_handoff.py --rows "${ROWS:-1e7}" --out "$OUT/handoff.json" ;;
      formulations)  # needs the 1e8 groupby data of a suite or handoff stage run before it
        data=$(ls -d "$WORKBENCH_DATA"/h2o_groupby/G1_1e8_1e2_0_0*/ | head -n 1)
        timeout 300 python3 benchmarks/formulations.py "$data" --out "$OUT/formulations.json" ;;
      training)  # wb.ml.fit on the GPU vs the CPU libraries at 2e7 rows, and beyond 512 MB
        timeout 560 python3 benchmarks/training.py --rows "${ROWS:-2e7}" --budget 512MB \
          --out "$OUT/training.json" ;;
      corpus)  # the analytic query corpus, ~5.5x a 2 GB budget
        timeout 560 python3 benchmarks/corpus.py --scale "${SCALE:-6e7}" --budget 2GB --runs 1 \
          --out "$OUT/corpus.json" ;;
      scaleout)
        timeout 400 python3 benchmarks/scaleout.py --rows 1e7 --partitions 16 --out "$OUT/scaleout.json" ;;
      suite-small|suite-large|suite-all|suite-budget|suite-budget-1e8)
        OUT="$OUT/suite" timeout 560 bash benchmarks/gpu_suite.sh "${stage#suite-}" ;;
      *) echo "unknown stage $stage" ;;
    esac
    echo "=== $stage done, exit $?"
  done
}
run "$@" 2>&1 | tee -a "$OUT/batch.log"

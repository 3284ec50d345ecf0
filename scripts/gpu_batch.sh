#!/usr/bin/env bash
# The GPU checks, run on a machine where RAPIDS is on PYTHONPATH (e.g. /tmp/site):
#   OUT=/folder bash scripts/gpu_batch.sh doctor tests notebooks demo held handoff formulations \
#       suite-small|large|all|budget|budget-1e8 notebooks-full training training-beyond training-beyond-gpu tests-ml tests-these \
#       training-these xgb-pages kmeans-memory passes wordings q-budget corpus views probes cpu-streaming scaleout
# Everything printed goes to $OUT/batch.log; JSON results beside it. With DEADLINE
# (seconds since the epoch) no stage runs past it: each stage's limit is cut to fit.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${OUT:?set OUT to the folder for the results}"
mkdir -p "$OUT"
[ -d /tmp/site ] && export PYTHONPATH="/tmp/site:$PWD"
export PYTHONUNBUFFERED=1 WORKBENCH_DATA="${WORKBENCH_DATA:-/tmp/wb-data}"
# t SECONDS: the stage's limit, cut to what is left before DEADLINE
t() {
  local left=$(( ${DEADLINE:-9999999999} - $(date +%s) ))
  [ "$left" -lt "$1" ] && echo $(( left > 1 ? left : 1 )) || echo "$1"
}
PYTEST=(python3 -m pytest -m gpu -q -p no:cacheprovider -o addopts= --tb=short -rfE)
run() {
  for stage in "$@"; do
    echo "=== $stage $(date -u +%H:%M:%S)"
    case "$stage" in
      doctor)
        timeout "$(t 180)" python3 -m workbench doctor --json > "$OUT/doctor.json"
        echo "doctor --json exit $?"
        timeout "$(t 180)" python3 -m workbench doctor ;;
      tests)  # the rooms that hold most GPU tests first, each group with its own log
        timeout "$(t 300)" "${PYTEST[@]}" tests/engine tests/frame tests/ml 2>&1 \
          | tee "$OUT/gpu-tests-engine-frame-ml.log" | tail -n 40
        timeout "$(t 360)" "${PYTEST[@]}" tests --ignore=tests/engine --ignore=tests/frame \
          --ignore=tests/ml 2>&1 | tee "$OUT/gpu-tests-other-rooms.log" | tail -n 40 ;;
      notebooks)  # the lessons top to bottom in a real kernel (nbclient, ipykernel brought along)
        timeout "$(t 400)" python3 -m pytest tests/test_notebooks.py -q -p no:cacheprovider \
          -o addopts= --tb=short -rfE 2>&1 | tee "$OUT/gpu-notebooks.log" | tail -n 30 ;;
      notebooks-full)  # every lesson at its own size (LESSONS="01- or 02-": some of them)
        WORKBENCH_LESSONS_FULL_SIZE=1 timeout "$(t 560)" python3 -m pytest tests/test_notebooks.py -q \
          -p no:cacheprovider -o addopts= --tb=short -rfE ${LESSONS:+-k "$LESSONS"} 2>&1 \
          | tee "$OUT/gpu-notebooks-full.log" | tail -n 30 ;;
      tests-these)  # the GPU tests of the files in $TESTS
        timeout "$(t 400)" "${PYTEST[@]}" $TESTS 2>&1 | tee "$OUT/gpu-tests-these.log" | tail -n 40 ;;
      training-these)  # $MODELS in memory, $BEYOND_MODELS beyond 512 MB, each budgeted fit profiled
        timeout "$(t 400)" python3 benchmarks/training.py --rows "${ROWS:-2e7}" --models "${MODELS:-}" \
          --beyond-models "${BEYOND_MODELS:-}" --budget 512MB --profile "$OUT/profile" \
          --out "$OUT/training-these.json"
        cat "$OUT"/profile/*.txt 2>/dev/null ;;  # in the log too: it always comes back
      xgb-pages)  # XGBoost's external memory fit against its cache page size, beyond 512 MB
        timeout "$(t 300)" python3 benchmarks/xgboost_pages.py --budget 512MB --out "$OUT/xgboost_pages.json" ;;
      demo)
        timeout "$(t 240)" python3 -m workbench demo ;;
      held)  # groupby 1e8, in memory: polars CPU, cudf and the workbench side by side
        OUT="$OUT/suite" timeout "$(t 500)" bash benchmarks/gpu_suite.sh groupby:1e8 --engines polars,cudf,workbench ;;
      handoff)
        timeout "$(t 400)" python3 benchmarks/frame_handoff.py --rows "${ROWS:-1e7}" --out "$OUT/handoff.json" ;;
      formulations)  # needs the 1e8 groupby data of a suite or handoff stage run before it
        data=$(ls -d "$WORKBENCH_DATA"/h2o_groupby/G1_1e8_1e2_0_0*/ | head -n 1)
        timeout "$(t 300)" python3 benchmarks/formulations.py "$data" --out "$OUT/formulations.json" ;;
      training)  # wb.ml.fit on the GPU vs the CPU libraries at 2e7 rows, and beyond 512 MB
        timeout "$(t 560)" python3 benchmarks/training.py --rows "${ROWS:-2e7}" --budget 512MB \
          --out "$OUT/training.json" ;;
      training-beyond)  # beyond 512 MB only, with the CPU libraries on the same data
        timeout "$(t 560)" python3 benchmarks/training.py --models '' --budget 512MB --beyond-cpu \
          --out "$OUT/training-beyond.json" ;;
      training-beyond-gpu)  # beyond 512 MB, the GPU only (budget and no budget)
        timeout "$(t 560)" python3 benchmarks/training.py --models '' --budget 512MB \
          --out "$OUT/training-beyond.json" ;;
      tests-ml)  # the training room's GPU tests alone
        timeout "$(t 300)" "${PYTEST[@]}" tests/ml 2>&1 | tee "$OUT/gpu-tests-ml.log" | tail -n 40 ;;
      kmeans-memory)  # k-means in device memory: cuml against the streamed Lloyd passes
        timeout "$(t 300)" python3 benchmarks/kmeans_in_memory.py --rows "${ROWS:-2e7}" \
          --out "$OUT/kmeans_in_memory.json" ;;
      passes)  # one streamed pass beyond 512 MB, assembled and cached, against the bus floor
        timeout "$(t 300)" python3 benchmarks/chunk_passes.py --budget 512MB --out "$OUT/chunk_passes.json" ;;
      wordings)  # groupby at $ROWS (1e8) in memory, each question as the benchmark and as users word it
        timeout "$(t 400)" python3 benchmarks/groupby_wordings.py --rows "${ROWS:-1e8}" --out "$OUT/wordings.json" ;;
      q-budget)  # $QS (q10) at 1e8 under $BUDGET (1GB), as users word them, profiled into $OUT/profile
        timeout "$(t 300)" python3 benchmarks/groupby_wordings.py --rows 1e8 --budget "${BUDGET:-1GB}" \
          --questions "${QS:-q10}" --wordings user --profile "$OUT/profile" --out "$OUT/q-budget.json"
        cat "$OUT"/profile/*.txt 2>/dev/null | head -n 120 ;;
      corpus)  # the analytic query corpus, ~5.5x the budget (6e7 rows: 2 GB, 3e7: 1 GB); PROFILE=1: each query profiled
        timeout "$(t 560)" python3 benchmarks/corpus.py --scale "${SCALE:-6e7}" --budget "${BUDGET:-2GB}" --runs 1 --timeout "${QTIMEOUT:-40}" \
          ${QUERIES:+--queries "$QUERIES"} ${ENGINES:+--engines "$ENGINES"} ${STREAM_SHARE:+--stream-share "$STREAM_SHARE"} \
          ${PROFILE:+--profile "$OUT/corpus-profile"} --out "$OUT/corpus${TAG:+-$TAG}.json"
        # one file comes back where dozens might not
        if [ -d "$OUT/corpus-profile" ]; then
          tar czf "$OUT/corpus-profile.tgz" -C "$OUT" corpus-profile && rm -rf "$OUT/corpus-profile"
        fi ;;
      views)  # Arrow to polars with strings: pl.from_arrow against as_polars (string views), fresh processes
        timeout "$(t 200)" python3 benchmarks/polars_views.py --rows "${ROWS:-3e7}" --out "$OUT/views.json" ;;
      probes)  # small measurements behind open choices: n_unique's forms, fetch ways, host pages
        timeout "$(t 60)" python3 benchmarks/n_unique_forms.py --rows 3.75e6 --out "$OUT/n_unique-3.75e6.json"
        timeout "$(t 90)" python3 benchmarks/n_unique_forms.py --rows 3e7 --runs 3 --out "$OUT/n_unique-3e7.json"
        timeout "$(t 60)" python3 benchmarks/fetch_rates.py --mb 1024 --out "$OUT/fetch_rates.json"
        timeout "$(t 60)" python3 benchmarks/host_pages.py --mb 1024 --runs 3 --out "$OUT/host_pages.json" ;;
      cpu-streaming)  # polars on the CPU over the corpus's files, in memory against streaming ($SOURCES: files, memory or frames)
        timeout "$(t 400)" python3 benchmarks/cpu_streaming.py --corpus --rows "${ROWS:-3e7}" --runs 1 \
          --sources "${SOURCES:-files}" --out "$OUT/cpu-streaming-corpus-${SOURCES:-files}.json" ;;
      scaleout)
        timeout "$(t 400)" python3 benchmarks/scaleout.py --rows 1e7 --partitions 16 --out "$OUT/scaleout.json" ;;
      suite-small|suite-large|suite-all|suite-budget|suite-budget-1e8)
        OUT="$OUT/suite" timeout "$(t 560)" bash benchmarks/gpu_suite.sh "${stage#suite-}" ;;
      *) echo "unknown stage $stage" ;;
    esac
    echo "=== $stage done, exit $?"
  done
}
run "$@" 2>&1 | tee -a "$OUT/batch.log"

#!/usr/bin/env bash
# Rerun the theory check and the performance benchmarks of dynamo-rl and collect their output in one file
# (default docs/results/benchmarks.txt), with the commit, the machine and its load so the numbers can be judged.
#
#   bash experiments/run_benchmarks.sh [OUTPUT_FILE]
#
# Every benchmark prints its own ratios side by side from one run (no timings are compared across runs).
# Single-threaded (OMP_NUM_THREADS=1, torch threads 1), as in the study.
set -u -o pipefail
cd "$(dirname "$0")/.."
OUT="${1:-docs/results/benchmarks.txt}"
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python
mkdir -p "$(dirname "$OUT")"
CORES="$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc --all)"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH="${PYTHONPATH:-}:."
TMP="$(mktemp)"
trap 'rm -f "$TMP"' EXIT
status=0

run() {  # run TITLE COMMAND...: append a titled section with the command, its output, its time and exit status
    local title="$1"; shift
    {
        echo "================================================================================"
        echo "## $title"
        echo "\$ $*"
        echo "--------------------------------------------------------------------------------"
    } >>"$TMP"
    local start end rc
    start=$(date +%s)
    "$@" >>"$TMP" 2>&1
    rc=$?
    end=$(date +%s)
    echo "[exit $rc, $((end - start)) s, load average: $(cut -d' ' -f1-3 /proc/loadavg)]" >>"$TMP"
    echo >>"$TMP"
    [ "$rc" -eq 0 ] || status=1
    echo "done: $title (exit $rc, $((end - start)) s)"
}

{
    echo "dynamo-rl benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "commit: $(git rev-parse HEAD 2>/dev/null || echo unknown) (working tree may contain uncommitted changes)"
    echo "machine: $CORES CPU cores, $(uname -m), $("$PY" -c 'import torch; print("torch", torch.__version__)')"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (the machine is shared; ratios are measured side by side)"
    echo
} >"$TMP"

run "Eq 44 variance simulation (measured vs analytic variance ratio, variance- and sigma-weighted)" \
    "$PY" benchmarks/variance_simulation.py
run "Allocation speed and scaling (M = 512 vs 65,536)" "$PY" benchmarks/bench_allocation.py
run "Token statistics vs plain torch (N = 2048, V = 151,936, bf16)" "$PY" benchmarks/bench_token_stats.py
run "Token statistics vs plain torch, with the centred term (exact entropy change)" \
    "$PY" benchmarks/bench_token_stats.py --with-centered
run "DynaMO / GRPO step time, demo-model scale (hidden 128, 3 layers, vocab 64, 64 sequences of 16 tokens)" \
    "$PY" benchmarks/bench_step_time.py --hidden 128 --layers 3 --vocab 64 --batch 64 --length 16 --micro 64
run "DynaMO / GRPO step time, default scale (hidden 256, 4 layers, vocab 4096, 128 sequences of 128 tokens)" \
    "$PY" benchmarks/bench_step_time.py --repeats "${STEP_TIME_REPEATS:-5}"

run "Answer verification: plain-integer fast path vs math-verify (demo completions, demo trainer, one study run)" \
    "$PY" benchmarks/bench_verify.py --completions 2048 --train-steps 20 --study-run --steps 8

mv "$TMP" "$OUT"
trap - EXIT
echo "wrote $OUT"
exit $status

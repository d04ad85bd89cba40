#!/usr/bin/env bash
# gpu-check.sh - the GPU checks in one command, for a machine with an NVIDIA GPU, nvcc, CMake, ninja,
# a C++ compiler and PyTorch with CUDA, but no LLVM and perhaps no Eigen/doctest/nlohmann headers
# (pass a folder holding them as DOPA_HEADERS_DIR; scripts/gpu-headers.sh prepares one).
#
# Builds the runtime, the committed generated/ networks (C++ and CUDA), the gpu tests and the
# runtime-only dopa tool (no compiler needed: -DDOPA_RUNTIME_ONLY=ON), runs the gpu tests (CUDA vs
# C++ for every example), trains cue-reward briefly with `dopa train --engine cuda` next to the C++
# engine (same seed; last rewards and seconds per iteration), then times one cue-reward iteration
# (modul, B=30, H=200, T=120) for the generated CUDA, the generated C++ on this machine's cores, and
# the PyTorch formulation on the GPU, and prints a table last.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${DOPA_JOBS:-$(nproc)}
build=${BUILD:-build-gpu}
iters=${ITERS:-10}
headers=${DOPA_HEADERS_DIR:-$PWD/.gpu-headers}
start=$(date +%s)
section() { printf '\n== %s (%ds)\n' "$1" $(( $(date +%s) - start )); }

section "configure and build (runtime only, CUDA on)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDOPA_RUNTIME_ONLY=ON -DDOPA_CUDA=ON \
  -DDOPA_HEADERS_DIR="$headers" > "$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
ninja -C "$build" -j"$jobs" dopa_gpu_tests dopa_gpu_bench dopa
if nm -C "$build/bin/dopa" | grep -q "llvm::"; then echo "runtime-only dopa has LLVM symbols"; exit 1; fi

section "gpu tests"
ctest --test-dir "$build" -L gpu --output-on-failure | tee "$build.ctest.log"

section "dopa train --engine cuda next to the C++ engine"
train_iters=${TRAIN_ITERS:-60}
trains=()
for engine in cuda generated; do
  rm -rf "$build/train-$engine"
  "$build/bin/dopa" train cue-reward --variant modul --engine "$engine" --iters "$train_iters" \
    --burn-in 0 --lr 1e-3 --seed 0 --out "$build/train-$engine" 2>&1 | tail -2
  trains+=("$(awk -F, -v e="$engine" 'NR > 1 {n++; r += $2; s += $5} END {
    printf "%-9s %5d iterations  mean reward %+.3f  %.4f s/it", e, n, r / n, s / n}' \
    "$build/train-$engine/log.csv")")
done

section "benchmark: one cue-reward iteration"
rows=()
for variant in ${VARIANTS:-modul plastic}; do
  while read -r line; do rows+=("$line"); done < <("$build/tests/gpu/dopa_gpu_bench" "$variant" "$iters" 2> >(tee -a "$build.bench.log" >&2))
  rows+=("$(python3 bench/reference/cuda_iteration.py --variant "$variant" --iters "$iters")")
done

section "summary"
grep -E "tests passed|tests failed|Skipped|Failed" "$build.ctest.log" || true
printf '%s\n' "${trains[@]}"
printf '%-8s %-9s %12s %10s %14s\n' engine variant "median s/it" "min s/it" "PyTorch/engine"
for r in "${rows[@]}"; do
  read -r engine variant med min <<< "$r"
  ref=$(printf '%s\n' "${rows[@]}" | awk -v v="$variant" '$1 == "pytorch" && $2 == v {print $3}')
  printf '%-8s %-9s %12s %10s %14s\n' "$engine" "$variant" "$med" "$min" \
    "$(awk -v a="$ref" -v b="$med" 'BEGIN {printf "%.1fx", a / b}')"
done

#!/usr/bin/env bash
# test.sh - the whole test suite, as CI runs it (the README's test command).
#
#  1. install dependencies (idempotent), build Release, run every CTest test;
#  2. the runtime-only build (no LLVM) of dopa and a short training run with it;
#     build with clang-19 + AddressSanitizer/UndefinedBehaviorSanitizer, run every test again, and
#     run the libFuzzer targets (front end for DOPA_FUZZ_SECONDS, default 60; safetensors reader for a
#     quarter of that);
#  3. check formatting (clang-format-19), lint (clang-tidy-19, incl. function length) and file sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${DOPA_JOBS:-2}
# Tests run $jobs at a time and many use OpenMP: libgomp's threads would otherwise spin while they
# wait, taking the cores from the test beside them (a 7-second test took 129 s beside another).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
fuzz_seconds=${DOPA_FUZZ_SECONDS:-60}
start=$(date +%s)
section() { printf '\n== %s (%ds)\n' "$1" $(( $(date +%s) - start )); }

section "dependencies"
bash scripts/install-deps.sh

section "Release build and tests"
DOPA_CMAKE_ARGS="-DDOPA_GENERATED_WERROR=ON" bash scripts/build.sh
ctest --test-dir build -j"$jobs" --output-on-failure -LE fuzz

section "runtime-only build (no LLVM): dopa trains on the generated engines"
bash scripts/check-runtime-only.sh

section "sanitizer build (ASan + UBSan, clang-19) and tests, then fuzzing"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++-19 \
  -DDOPA_SANITIZE=ON -DDOPA_FUZZ=ON -DDOPA_FUZZ_SECONDS="$fuzz_seconds" \
  -DDOPA_GENERATED_WERROR=ON -DDOPA_CUDA=OFF -DDOPA_EXAMPLE_SIZES= \
  -DCMAKE_DISABLE_FIND_PACKAGE_MPI=ON > /dev/null  # OpenMPI leaks by design: no LeakSanitizer noise
ninja -C build-asan -j"$jobs"
ctest --test-dir build-asan -j"$jobs" --output-on-failure -LE fuzz
ctest --test-dir build-asan --output-on-failure -L fuzz
grep -E "stat::(number_of_executed_units|new_units_added|peak_rss_mb)|Done [0-9]+ runs" \
  build-asan/Testing/Temporary/LastTest.log || true

section "format, lint and sizes"
bash scripts/check-sizes.sh
mapfile -t sources < <(git ls-files '*.cpp' '*.h' ':!:generated/*')
clang-format-19 --dry-run --Werror "${sources[@]}"
# One clang-tidy per file, $jobs at a time (xargs fails when any of them does).
git ls-files 'dsl/*.cpp' 'compiler/*.cpp' 'runtime/*.cpp' 'tools/*.cpp' |
  xargs -r -P "$jobs" -n 1 clang-tidy-19 -p build --quiet

section "all checks passed"

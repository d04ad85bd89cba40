#!/usr/bin/env bash
# check-runtime-only.sh [BUILD_DIR] - the runtime-only build (-DDOPA_RUNTIME_ONLY=ON: no LLVM, no
# compiler; the committed generated/ networks, CUDA too where nvcc is) builds, its dopa has no LLVM
# symbol and links no LLVM library, trains on the generated engine, and refuses the generic engine
# with a usage error (exit 2). Used by test.sh; CUDA stays off here unless DOPA_RUNTIME_ONLY_CUDA=ON
# (the Release build compiles every generated .cu already; gpu-check.sh builds runtime-only with CUDA).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-runtime-only}
jobs=${DOPA_JOBS:-2}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDOPA_RUNTIME_ONLY=ON \
  -DDOPA_CUDA=${DOPA_RUNTIME_ONLY_CUDA:-OFF} ${DOPA_CMAKE_ARGS:-} > "$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
ninja -C "$build" -j"$jobs" dopa
dopa=$build/bin/dopa
# Counted, not grep -q: grep -q stops at the first match, nm dies of SIGPIPE, and under pipefail
# the pipeline's status (141) would read as "no match".
llvmSymbols=$(nm -C "$dopa" | grep -c "llvm::" || true)
if [ "$llvmSymbols" -ne 0 ]; then echo "runtime-only dopa has $llvmSymbols LLVM symbols"; exit 1; fi
llvmLibraries=$(ldd "$dopa" | grep -ciE "libLLVM|libclang" || true)
if [ "$llvmLibraries" -ne 0 ]; then echo "runtime-only dopa links LLVM"; exit 1; fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
"$dopa" train cue-reward --variant modul --iters 2 --batch 2 --eplen 10 --threads 1 \
  --out "$out/run" > "$out/train.log" 2>&1 || { cat "$out/train.log"; exit 1; }
set +e
"$dopa" train cue-reward --engine generic --iters 1 --out "$out/generic" > "$out/generic.log" 2>&1
rc=$?
set -e
grep -q "needs the full build" "$out/generic.log" && [ $rc -eq 2 ] ||
  { echo "expected a usage error for --engine generic (rc $rc)"; cat "$out/generic.log"; exit 1; }
echo "check-runtime-only: ok (no LLVM in $dopa; trains on the generated engine)"

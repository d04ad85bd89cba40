#!/usr/bin/env bash
# build.sh - configure and build dopa (Release, Ninja) into build/. Used by demo.sh and test.sh.
#
# At most 2 parallel jobs (the project's machines have 2 cores); DOPA_JOBS overrides. DOPA_CMAKE_ARGS
# adds configure options (test.sh: -DDOPA_GENERATED_WERROR=ON). Arguments name targets to build
# (demo.sh: dopa dopac), default all. --quiet first: nothing printed unless the build fails, then
# the end of its log (ninja prints the compiler's errors on stdout).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = --quiet ]; then
  shift
  log=$(mktemp)
  trap 'rm -f "$log"' EXIT
  bash "$0" "$@" > "$log" 2>&1 || { tail -n 40 "$log" >&2; exit 1; }
  exit 0
fi
jobs=${DOPA_JOBS:-2}
# shellcheck disable=SC2086
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release ${DOPA_CMAKE_ARGS:-} > build-configure.log 2>&1 ||
  { cat build-configure.log; exit 1; }
rm -f build-configure.log
ninja -C build -j"$jobs" "$@"

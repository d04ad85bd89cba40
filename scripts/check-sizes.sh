#!/usr/bin/env bash
# check-sizes.sh - no hand-written source file over 900 lines (generated/ excepted). Function length
# (at most 120 lines) is checked by clang-tidy's readability-function-size (.clang-tidy).
set -euo pipefail
cd "$(dirname "$0")/.."
limit=900
bad=0
while IFS= read -r f; do
  n=$(wc -l < "$f")
  if (( n > limit )); then
    echo "check-sizes: $f has $n lines (limit $limit): split it"
    bad=1
  fi
done < <(git ls-files '*.cpp' '*.h' '*.cu' '*.cuh' '*.py' '*.sh' ':!:generated/*')
exit $bad

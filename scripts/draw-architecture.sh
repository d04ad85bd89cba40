#!/usr/bin/env bash
# draw-architecture.sh [OUT.png] - draw the project's CMake target graph (libraries and the two
# tools; no tests, no benchmark programs, one node for the example networks) with CMake's --graphviz
# and Graphviz's dot. Default output: docs/images/architecture.png.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/images/architecture.png}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/CMakeGraphVizOptions.cmake" <<'OPTS'
set(GRAPHVIZ_EXTERNAL_LIBS FALSE)
set(GRAPHVIZ_INTERFACE_LIBS FALSE)
set(GRAPHVIZ_GENERATE_PER_TARGET FALSE)
set(GRAPHVIZ_GENERATE_DEPENDERS FALSE)
set(GRAPHVIZ_IGNORE_TARGETS "^dopa_(unit|codegen|gpu|microbench|fuzz|train_fixture).*"
    "^(cue_reward|maze|lm)_.*" "^codegen_" "^consumer" "^dopa_options$")
OPTS
cmake -S . -B "$tmp/build" -G Ninja -DDOPA_EXAMPLE_SIZES= > /dev/null
(cd "$tmp/build" && cp ../CMakeGraphVizOptions.cmake . && cmake --graphviz=targets.dot . > /dev/null)
# Drop CMake's legend; label the tools.
/usr/bin/python3 - "$tmp/build/targets.dot" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
text = re.sub(r"subgraph clusterLegend \{.*?\n\}\n", "", text, flags=re.S)
open(sys.argv[1], "w").write(text)
PY
dot -Tpng -Gdpi=110 -o "$out" "$tmp/build/targets.dot"
echo "draw-architecture: $out"

#!/usr/bin/env bash
# draw-network.sh - picture of a network's forward and backward step graphs (Graphviz).
#
# Usage: scripts/draw-network.sh SPEC OUT.{png,svg} [dopac options, e.g. -D H=8 --network NAME]
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 SPEC OUT.png|OUT.svg [dopac options]" >&2; exit 2; }
spec=$1 out=$2
shift 2
format=${out##*.}
[ -x build/bin/dopac ] || bash scripts/build.sh > /dev/null
build/bin/dopac --emit=dot "$@" "$spec" | dot -T"$format" -o "$out"
echo "wrote $out"

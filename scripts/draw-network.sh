#!/usr/bin/env bash
# draw-network.sh - picture of a network's forward and backward step graphs (Graphviz).
#
# Usage: scripts/draw-network.sh SPEC OUT.{png,svg} [dopac options, e.g. -D H=8 --network NAME]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 SPEC OUT.png|OUT.svg [dopac options]" >&2; exit 2; }
spec=$1 out=$2
shift 2
format=${out##*.}
root=$(cd "$(dirname "$0")/.." && pwd) # SPEC and OUT stay relative to where it was started
[ -x "$root/build/bin/dopac" ] || (cd "$root" && bash scripts/build.sh --quiet)
# Drawn beside OUT and renamed: an interrupted run leaves no half picture in its place.
"$root/build/bin/dopac" --emit=dot "$@" "$spec" | dot -T"$format" -o "$out.tmp.$$"
mv -f "$out.tmp.$$" "$out"
echo "wrote $out"

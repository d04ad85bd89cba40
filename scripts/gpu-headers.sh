#!/usr/bin/env bash
# gpu-headers.sh - copy the header-only dependencies (Eigen, doctest, nlohmann-json, CLI11) from this
# machine's Debian packages into .gpu-headers/ (git-ignored), for a machine that has none
# (scripts/gpu-check.sh builds with -DDOPA_HEADERS_DIR=.gpu-headers).
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf .gpu-headers && mkdir -p .gpu-headers/doctest .gpu-headers/nlohmann
cp -r /usr/include/eigen3 .gpu-headers/eigen3
cp /usr/include/doctest/doctest.h .gpu-headers/doctest/
cp -r /usr/include/nlohmann/. .gpu-headers/nlohmann/
cp -r /usr/include/CLI .gpu-headers/CLI
du -sh .gpu-headers

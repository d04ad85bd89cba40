#!/usr/bin/env bash
# install-deps.sh - install every Debian package dopa's build, tests and benchmarks need.
#
# Idempotent: packages already present are left alone, so running it twice costs one `dpkg -s` per package.
# The CUDA toolkit (nvcc) is not a Debian package here; it comes with the machine image. The build finds it
# when present and skips the CUDA parts visibly when not.
set -euo pipefail

packages=(
  # build
  cmake ninja-build g++ pkg-config
  # LLVM/Clang 19: SourceMgr diagnostics, llvm::cl, libFormat; clang-19 for the fuzzer and sanitizers
  llvm-19-dev libclang-19-dev clang-19 libclang-rt-19-dev libomp-19-dev llvm-19-tools libzstd-dev
  clang-format-19 clang-tidy-19
  # header-only libraries
  libeigen3-dev doctest-dev nlohmann-json3-dev libcli11-dev
  # MD5 of the corpus files (the PTB split's checksums), SHA-256 of the on-demand compiler's cache
  libssl-dev
  # the Python module (import dopa; dopa.torch)
  python3-dev pybind11-dev
  # data-parallel training and seed sweeps over MPI (mpirun -np N dopa train ...)
  openmpi-bin libopenmpi-dev
  # benchmarks and reference implementations (Debian's python3, not a venv)
  libbenchmark-dev python3 python3-numpy python3-torch python3-matplotlib python3-scipy
  # PyTorch's BLAS: Debian's torch calls libblas.so.3, which is netlib's reference BLAS unless
  # OpenBLAS provides it (the OpenMP build: one thread pool with torch's libgomp)
  libopenblas0-openmp
  # plots from the C++ side and benchmark tools (time: bench/iteration.sh's peak memory; procps:
  # pkill, with which the reproduction scripts stop their runs)
  gnuplot-nox hyperfine graphviz time procps
  # bench/report.sh's profile of the generated code
  linux-perf
  # scripts/gpu-bundle.sh compresses the GPU machine's tools with xz
  xz-utils
)

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"

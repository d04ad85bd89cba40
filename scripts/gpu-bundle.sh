#!/usr/bin/env bash
# gpu-bundle.sh - prepare .gpu-bundle/ (git-ignored) for a GPU machine that has CUDA but no Debian
# packages: the runtime-only tools built here (build-dev: CUDA on, MPI on, -march=x86-64-v3 so any
# x86-64 host with AVX2 runs them) and Open MPI with every library it loads, for `mpirun` where
# the machine has none. scripts/gpu-check.sh uses what it finds there and falls back to building.
#
#   bash scripts/gpu-bundle.sh        # builds build-dev first (about 15 minutes on 2 cores)
#
# The bundle must stay small: it travels with the working tree (64 MiB in all).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${DOPA_JOBS:-2}
cmake -S . -B build-dev -G Ninja -DCMAKE_BUILD_TYPE=Release -DDOPA_RUNTIME_ONLY=ON -DDOPA_CUDA=ON \
  -DDOPA_ARCH_FLAGS=-march=x86-64-v3 -DCMAKE_CUDA_RUNTIME_LIBRARY=Static > build-dev.configure.log
ninja -C build-dev -j"$jobs" dopa dopa_gpu_tests dopa_gpu_bench
rm -rf .gpu-bundle && mkdir -p .gpu-bundle/bin .gpu-bundle/lib .gpu-bundle/mpi
for f in bin/dopa tests/gpu/dopa_gpu_tests tests/gpu/dopa_gpu_bench; do
  strip -o ".gpu-bundle/bin/$(basename "$f")" "build-dev/$f"
done
# The shared libraries dopa loads that a CUDA image may lack, flat in lib/: Open MPI's (and theirs,
# except glibc's and the C++ runtime), the CUDA runtime, OpenMP. Open MPI's launcher, plugins,
# help texts and settings at their own absolute paths in mpi/root.tar.gz.
multi=/usr/lib/x86_64-linux-gnu
{
  ldd /usr/bin/orterun "$multi/libmpi.so.40" "$multi/libmpi_cxx.so.40"
  for f in "$multi"/openmpi/lib/openmpi3/mca_*.so "$multi"/pmix2/lib/pmix/*.so; do ldd "$f"; done
} 2>/dev/null | awk '/=> \// {print $3}' | sort -u |
  grep -vE '/(libc|libm|libpthread|libdl|librt|libstdc\+\+|libgcc_s)\.so' |
  while read -r lib; do cp -L "$lib" .gpu-bundle/lib/; done
ldd build-dev/bin/dopa | awk '/=> \// {print $3}' | { grep -E 'lib(mpi_cxx|cudart|gomp)\.so' || true; } |
  while read -r lib; do cp -L "$lib" .gpu-bundle/lib/; done
tar -C / -czf .gpu-bundle/mpi/root.tar.gz usr/bin/orterun usr/bin/orted usr/bin/mpirun \
  usr/lib/x86_64-linux-gnu/openmpi usr/lib/x86_64-linux-gnu/pmix2 usr/share/openmpi \
  etc/openmpi
# xz with a dictionary larger than a binary: the three binaries share most of their bytes (every
# network's kernels), which gzip's 32 KB window cannot see (30 MB with gzip, 14 with xz).
tar -C .gpu-bundle -cf - bin lib mpi | xz -9 -T2 > .gpu-bundle.tar.xz
rm -rf .gpu-bundle/bin .gpu-bundle/lib .gpu-bundle/mpi
mv .gpu-bundle.tar.xz .gpu-bundle/bundle.tar.xz
du -sh .gpu-bundle

#!/usr/bin/env bash
# run.sh BUILD_DIR - install BUILD_DIR into a fresh prefix, check what the install holds (both tools,
# the examples, the headers), then configure, build and run tests/consumer against it: the CPU
# network always, the CUDA network when the install has the CUDA runtime (run only with a GPU).
set -euo pipefail
build=$1
here=$(cd "$(dirname "$0")" && pwd)
rm -rf consumer && mkdir consumer
cmake --install "$build" --prefix consumer/install > consumer/install.log
prefix=$PWD/consumer/install
for f in bin/dopa bin/dopac share/dopa/examples/cue_reward/modul.dopa include/dopa/runtime/Network.h \
         include/dopa/train/Trainer.h lib/cmake/dopa/dopaConfig.cmake; do
  [ -e "$prefix/$f" ] || { echo "install lacks $f"; exit 1; }
done
"$prefix/bin/dopa" --version
"$prefix/bin/dopac" --version | head -1
cmake -S "$here" -B consumer/build -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" > consumer/configure.log
ninja -C consumer/build > consumer/build.log
consumer/build/consumer
if [ -x consumer/build/consumer_cuda ]; then
  consumer/build/consumer_cuda
else
  echo "no CUDA consumer (this dopa was built without CUDA)"
fi

#!/usr/bin/env bash
# run.sh BUILD_DIR - install BUILD_DIR into a fresh prefix, check what the install holds (both tools,
# the examples, the headers), then configure, build and run tests/consumer against it: the CPU
# network and a task plug-in always, the CUDA network when the install has the CUDA runtime (run
# only with a GPU).
set -euo pipefail
build=$1
here=$(cd "$(dirname "$0")" && pwd)
rm -rf consumer && mkdir consumer
cmake --install "$build" --prefix consumer/install > consumer/install.log
prefix=$PWD/consumer/install
for f in bin/dopa bin/dopac share/dopa/examples/cue_reward/modul.dopa include/dopa/runtime/Network.h \
         include/dopa/train/Trainer.h include/dopa/train/Task.h lib/cmake/dopa/dopaConfig.cmake \
         lib/cmake/dopa/DopaAddTask.cmake share/dopa/examples/bandit/plastic.dopa; do
  [ -e "$prefix/$f" ] || { echo "install lacks $f"; exit 1; }
done
"$prefix/bin/dopa" --version
"$prefix/bin/dopac" --version | head -1
cmake -S "$here" -B consumer/build -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" > consumer/configure.log
ninja -C consumer/build > consumer/build.log
consumer/build/consumer
# The plug-in built against the install, loaded and trained by the installed dopa.
"$prefix/bin/dopa" train bandit --task-library consumer/build/libconsumer_bandit.so --engine generic \
  --spec "$prefix/share/dopa/examples/bandit/plastic.dopa" -D H=4 --batch 2 --iters 2 \
  --task-opt eplen=10 --threads 1 --out consumer/bandit-run 2>&1 | tail -n 1
[ -f consumer/bandit-run/checkpoint.st ] || { echo "the plug-in run wrote no checkpoint"; exit 1; }
if [ -x consumer/build/consumer_cuda ]; then
  consumer/build/consumer_cuda
else
  echo "no CUDA consumer (this dopa was built without CUDA)"
fi

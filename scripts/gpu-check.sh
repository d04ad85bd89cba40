#!/usr/bin/env bash
# gpu-check.sh - the GPU checks in one command, for a machine with an NVIDIA GPU, nvcc, CMake, ninja,
# a C++ compiler and PyTorch with CUDA, but perhaps no Debian packages at all.
#
# The tools come from .gpu-bundle/ when scripts/gpu-bundle.sh made one here (runtime-only dopa,
# the gpu test and benchmark, built for any AVX2 x86-64, and Open MPI for a machine without it);
# otherwise, or when those do not start, they are built (runtime only, CUDA on; header-only
# dependencies from DOPA_HEADERS_DIR, which scripts/gpu-headers.sh prepares as .gpu-headers/).
#
# Then, each section under a time limit and logged to $OUT (or /tmp/gpu-check):
#   1. for each launch policy (POLICIES: auto, the built-in choice, then barrier[:splits][/threads]:
#      DOPA_CUDA_BARRIER grid, block or cluster, DOPA_CUDA_SPLITS k, DOPA_CUDA_THREADS per block),
#      the gpu tests (generated CUDA against generated C++ for every example network) and the time
#      of one cue-reward iteration; the fastest policy that passes is used for the rest;
#   2. mpi: `dopa train --engine cuda` with 2 ranks against 1 process, and resume across rank
#      counts (tests/mpi/mpi_train.sh cuda); iteration times for 1 and 2 ranks on the one GPU and
#      for 1 and 4 independent runs sharing it, without and with MPS (SPEEDS=0 skips these);
#   seeds: 1, 4 and 10 seeds in one process (dopa train --seeds) under each of SEED_POLICIES
#      (default: auto, block/256, block/512), seed 1 against its separate run;
#   3. `dopa train --engine cuda` next to the C++ engine (same seed; rewards, seconds/iteration);
#   4. one cue-reward iteration (B=30, H=200, T=120) of the generated CUDA (the backward's segments
#      in one launch each, and launched per step: DOPA_CUDA_STEPWISE=1), the generated C++ on this
#      machine's cores and the PyTorch formulation on the GPU;
# SECTIONS (default "1 2 seeds 3 4") chooses among 2, seeds, 3 and 4 (section 1 always runs),
# and a table last.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${OUT:-/tmp/gpu-check} logs=/tmp/gpu-check-logs # $out: what comes back (few files)
mkdir -p "$out" "$logs"
: > "$out/notes.txt" # this call's notes only (the machine may be the warm one of an earlier call)
baseline=0           # 1 once this call has run seed 1 alone (speeds), for the --seeds comparison
jobs=${DOPA_JOBS:-$(nproc)}
iters=${ITERS:-10}
start=$(date +%s)
section() { printf '\n== %s (%ds)\n' "$1" $(( $(date +%s) - start )); }
wanted() { [[ " ${SECTIONS:-1 2 seeds 3 4} " == *" $1 "* ]]; } # the sections to run
summary=()
note() { summary+=("$1"); echo "$1"; echo "$1" >> "$out/notes.txt"; }
fail=0 # the exit status: 1 when a check failed (the table is printed anyway)
failed() { fail=1; note "FAILED: $1"; }
export DOPA_EXAMPLES_DIR=$root/examples OMP_WAIT_POLICY=PASSIVE PYTHONUNBUFFERED=1

section "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
nproc
grep -m1 "model name" /proc/cpuinfo

section "tools"
bin=""
export LD_LIBRARY_PATH=${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}/usr/local/cuda/lib64
if [ -f .gpu-bundle/bundle.tar.xz ]; then
  rm -rf /tmp/dopa-bundle && mkdir -p /tmp/dopa-bundle/tests/gpu
  # tar's xz where the machine has one, else Python's
  tar -C /tmp/dopa-bundle -xJf .gpu-bundle/bundle.tar.xz 2> /dev/null ||
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
      .gpu-bundle/bundle.tar.xz /tmp/dopa-bundle
  mv /tmp/dopa-bundle/bin/dopa_gpu_* /tmp/dopa-bundle/tests/gpu/
  launcher=$(mpirun --version 2>&1 | head -n 1)
  if [[ $launcher == *"Open MPI"* ]]; then
    note "mpi: this machine's Open MPI ($launcher)"
    cache=$(ldconfig -p)
    for lib in /tmp/dopa-bundle/lib/*; do # the machine's own where it has them (its mpirun's)
      if grep -q "/$(basename "$lib")\$" <<< "$cache"; then rm "$lib"; fi
    done
    ls /tmp/dopa-bundle/lib
  elif command -v mpirun > /dev/null; then # another MPI: leave it alone, and its mpirun cannot
    note "mpi: this machine's mpirun is not Open MPI ($launcher); the mpi checks are skipped"
    nompi=1
  else # Open MPI from the bundle: its files where its launcher looks for them
    tar -C / -xzf /tmp/dopa-bundle/mpi/root.tar.gz
    mkdir -p /tmp/dopa-bundle/mpi/bin && ln -sf /usr/bin/orterun /tmp/dopa-bundle/mpi/bin/mpirun
    export PATH=/tmp/dopa-bundle/mpi/bin:$PATH
    export OMPI_MCA_mca_base_component_show_load_errors=0 OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader,tcp
    note "mpi: Open MPI from the bundle"
  fi
  export LD_LIBRARY_PATH=/tmp/dopa-bundle/lib:$LD_LIBRARY_PATH
  if /tmp/dopa-bundle/bin/dopa --version; then
    bin=/tmp/dopa-bundle/bin tests=/tmp/dopa-bundle/tests/gpu
  else
    ldd /tmp/dopa-bundle/bin/dopa | grep "not found"
    note "bundle: its dopa does not start here; building"
  fi
fi
if [ -z "$bin" ]; then
  build=${BUILD:-build-gpu}
  headers=${DOPA_HEADERS_DIR:-$root/.gpu-headers}
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DDOPA_RUNTIME_ONLY=ON -DDOPA_CUDA=ON \
    -DDOPA_HEADERS_DIR="$headers" > "$out/configure.log" 2>&1 || { cat "$out/configure.log"; exit 1; }
  timeout 420 ninja -C "$build" -j"$jobs" dopa_gpu_tests dopa_gpu_bench dopa > "$out/build.log" 2>&1 ||
    { tail -40 "$out/build.log"; exit 1; }
  bin=$root/$build/bin tests=$root/$build/tests/gpu
fi
note "tools: $bin ($(( $(date +%s) - start )) s in)"

# policyEnv POLICY (barrier[:splits][/threads per block], e.g. cluster:4, grid, block/256; auto:
# the built-in choice): sets barrier, splits and threads from it (empty: the built-in choice).
policyEnv() {
  local policy=$1
  threads="" splits="" barrier=""
  if [[ $policy == */* ]]; then
    threads=${policy#*/} policy=${policy%%/*}
  fi
  [ "$policy" = auto ] && return
  barrier=${policy%%:*}
  [ "$policy" != "$barrier" ] && splits=${policy#*:}
  return 0
}
# with POLICY: run the rest of the line with DOPA_CUDA_BARRIER, DOPA_CUDA_SPLITS and
# DOPA_CUDA_THREADS set from POLICY.
with() {
  local barrier splits threads
  policyEnv "$1"
  shift
  DOPA_CUDA_BARRIER=$barrier DOPA_CUDA_SPLITS=$splits DOPA_CUDA_THREADS=$threads "$@"
}

section "1. launch policies: gpu tests (CUDA against C++, every example) and timing"
rows=()
best="" bestTime=""
for policy in ${POLICIES:-auto grid block cluster:8 cluster:4 cluster:2}; do
  tag=${policy//[:\/]/-}
  with "$policy" timeout 100 "$tests/dopa_gpu_tests" > "$logs/gpu_tests_$tag.log" 2>&1
  rc=$?
  if [ "$rc" -ne 0 ]; then
    tail -30 "$logs/gpu_tests_$tag.log"
    failed "gpu tests under $policy (exit $rc)"
  fi
  note "gpu tests, $policy: exit $rc; $(grep -E '^\[doctest\] (test cases|assertions)' \
    "$logs/gpu_tests_$tag.log" | tr -s ' ' | tr '\n' ' ')"
  for variant in ${VARIANTS:-modul plastic rnn}; do
    line=$(with "$policy" timeout 30 "$tests/dopa_gpu_bench" "$variant" "$iters" cuda 2>> "$out/bench.log")
    echo "$line"
    rows+=("$line")
    read -r _ v med _ <<< "$line"
    if [ "$rc" -eq 0 ] && [ "$v" = modul ] && { [ -z "$bestTime" ] ||
      awk -v a="$med" -v b="$bestTime" 'BEGIN {exit !(a < b)}'; }; then
      best=$policy bestTime=$med
    fi
  done
done
[ -n "$best" ] || failed "no launch policy passed the gpu tests"
note "fastest policy that passed the gpu tests (modul): ${best:-none} ($bestTime s); used below"
[ -n "$best" ] && [ "$best" != auto ] && {
  policyEnv "$best"
  export DOPA_CUDA_BARRIER=$barrier DOPA_CUDA_SPLITS=$splits DOPA_CUDA_THREADS=$threads
}

# together N WHAT LOG...: the logs of N runs that ran at once: seconds per iteration each
# (iterations 5 on) and iterations per second together.
together() {
  local n=$1 what=$2
  shift 2
  cat "$@" 2> /dev/null | awk -F, -v n="$n" -v what="$what" '$1 ~ /^[0-9]+$/ && $1 >= 5 {c++; s += $5} END {
    if (c) printf "%d %s: %.4f s/iteration each, %.1f iterations/s together", n, what, s / c, n * c / s
    else printf "%d %s: FAILED (no logs)", n, what}'
}

# speeds LABEL: cue-reward modul --engine cuda at batch 30, 1 and 2 ranks, then 1 and 4 independent
# runs at once (a process each), seconds per iteration from log.csv (iterations 5 on).
speeds() {
  local label=$1 np n s
  for np in 1 2; do
    rm -rf "/tmp/mpi-speed-$np"
    timeout 120 mpirun -np $np "$bin/dopa" train cue-reward --variant modul --engine cuda --iters 30 \
      --threads 1 --seed 0 --out "/tmp/mpi-speed-$np" > "$logs/mpi_speed_$np.log" 2>&1 ||
      tail -5 "$logs/mpi_speed_$np.log"
    note "$label: $(awk -F, -v np=$np 'NR > 6 {n++; s += $5} END {
      if (n) printf "data-parallel, %d rank(s): %.4f s/iteration", np, s / n
      else printf "data-parallel, %d rank(s): FAILED (no log)", np}' "/tmp/mpi-speed-$np/log.csv")"
  done
  for n in 1 4; do
    for s in $(seq 1 $n); do
      rm -rf "/tmp/share-$n-$s"
      timeout 120 "$bin/dopa" train cue-reward --variant modul --engine cuda --iters 40 --threads 1 \
        --seed "$s" --out "/tmp/share-$n-$s" > /dev/null 2>&1 &
    done
    wait
    note "$label: $(together "$n" "independent runs at once" /tmp/share-$n-*/log.csv)"
  done
  baseline=1
}

# seedsInOneProcess N POLICY: cue-reward modul --engine cuda --seeds 1-N in one process (each
# seed's run on its own thread and CUDA stream) under launch POLICY, seconds per iteration from the
# seeds' logs (iterations 5 on). Seed 1 is compared with the separate run of seed 1 (speeds'
# /tmp/share-1-1): the GPU's atomic sums make runs differ in the last bits, so iteration 0 must
# agree (the same reward, loss and gradient norm within 1e-3) and the rest is reported.
seedsInOneProcess() {
  local n=$1 policy=$2 tag=$1-${2//[:\/]/-}
  local dir=/tmp/seeds-$tag log=$logs/seeds_$tag.log
  rm -rf "$dir"
  with "$policy" timeout 240 "$bin/dopa" train cue-reward --variant modul --engine cuda --iters 40 \
    --threads "$n" --seeds "1-$n" --out "$dir" > "$log" 2>&1 || tail -5 "$log"
  note "one GPU, no MPS, $policy: $(together "$n" "seeds in one process (--seeds)" "$dir"/seed-*/log.csv)"
  if [ ! -s /tmp/share-1-1/log.csv ]; then
    note "--seeds 1-$n against the separate run of seed 1: SKIP (that run left no log)"
  elif ! agreement=$(python3 - /tmp/share-1-1/log.csv "$dir/seed-1/log.csv" 2>&1 << 'EOF'
import csv, sys
a, b = ([r for r in csv.DictReader(open(p))] for p in sys.argv[1:3])
if not a or not b:
    sys.exit("no rows in a log")
rel = lambda k: abs(float(a[0][k]) - float(b[0][k])) / max(abs(float(a[0][k])), 1e-12)
same = next((i for i, (x, y) in enumerate(zip(a, b)) if x["mean_reward"] != y["mean_reward"]), min(len(a), len(b)))
print(f"iteration 0: loss {rel('loss'):.1e}, grad norm {rel('grad_norm'):.1e} apart; the same rewards for {same} of {min(len(a), len(b))} iterations")
sys.exit(a[0]["mean_reward"] != b[0]["mean_reward"] or rel("loss") > 1e-3 or rel("grad_norm") > 1e-3)
EOF
  ); then
    failed "--seeds 1-$n ($policy): seed 1 is not the separate run of seed 1: ${agreement:-no log}"
  else
    note "--seeds 1-$n ($policy), seed 1 against its separate run: $agreement"
  fi
}

section "2. mpi with the CUDA engine"
if ! wanted 2; then
  note "section 2: skipped (SECTIONS)"
elif [ -z "${nompi:-}" ] && command -v mpirun > /dev/null; then
  mpirun --version 2>&1 | head -1
  DOPA_TEST_PYTHON=python3 timeout 300 bash tests/mpi/mpi_train.sh "$bin/dopa" "$root" \
    /tmp/mpi-cuda cuda > "$out/mpi_cuda.log" 2>&1
  rc=$?
  tail -20 "$out/mpi_cuda.log"
  note "mpi.cuda (2 ranks = 1 process; resume 2->1 and 1->2): exit $rc"
  [ "$rc" -eq 0 ] || failed "mpi.cuda (exit $rc; 77 is a skip, which is a failure where a GPU is)"
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
  if [ "${SPEEDS:-1}" = 1 ]; then
    speeds "one GPU, no MPS"
  fi
  if [ "${SPEEDS:-1}" != 1 ]; then
    note "speeds: skipped (SPEEDS=0)"
  elif command -v nvidia-cuda-mps-control > /dev/null; then
    export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
    mkdir -p "$CUDA_MPS_PIPE_DIRECTORY" "$CUDA_MPS_LOG_DIRECTORY"
    if nvidia-cuda-mps-control -d; then
      # Stopped however the script ends (the device time limit, a failure): not left on the GPU.
      trap 'echo quit | nvidia-cuda-mps-control > /dev/null 2>&1' EXIT
      sleep 1
      speeds "one GPU, MPS"
      echo quit | nvidia-cuda-mps-control
      trap - EXIT
      sleep 1
    fi
    unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
  else
    note "MPS: no nvidia-cuda-mps-control here"
  fi
elif [ -z "${nompi:-}" ]; then
  note "mpi: no mpirun here and no bundle: SKIP"
fi

section "2b. seeds in one process (dopa train --seeds) on the one GPU"
if wanted seeds; then
  if [ "$baseline" != 1 ]; then # the separate run of seed 1 (speeds made it, if it ran here)
    rm -rf /tmp/share-1-1
    timeout 120 "$bin/dopa" train cue-reward --variant modul --engine cuda --iters 40 --threads 1 \
      --seed 1 --out /tmp/share-1-1 > /dev/null 2>&1
  fi
  for policy in ${SEED_POLICIES:-auto block/256 block/512}; do
    for n in 1 4 10; do seedsInOneProcess "$n" "$policy"; done
  done
fi

section "3. dopa train --engine cuda next to the C++ engine"
wanted 3 && for engine in cuda generated; do
  rm -rf "/tmp/train-$engine"
  timeout 150 "$bin/dopa" train cue-reward --variant modul --engine "$engine" --iters "${TRAIN_ITERS:-60}" \
    --burn-in 0 --lr 1e-3 --seed 0 --out "/tmp/train-$engine" 2>&1 | tail -2
  rc=${PIPESTATUS[0]}
  note "$(awk -F, -v e="$engine" 'NR > 1 {n++; r += $2; s += $5} END {
    if (n) printf "train %-9s %5d iterations  mean reward %+.3f  %.4f s/it", e, n, r / n, s / n
    else printf "train %-9s FAILED (no log)", e}' "/tmp/train-$engine/log.csv")"
  rows=$(( $(wc -l < "/tmp/train-$engine/log.csv" 2> /dev/null || echo 1) - 1 ))
  [ "$rc" -eq 0 ] && [ "$rows" -eq "${TRAIN_ITERS:-60}" ] ||
    failed "dopa train --engine $engine (exit $rc, $rows of ${TRAIN_ITERS:-60} iterations logged)"
done

section "4. benchmark: one cue-reward iteration against C++ and PyTorch"
wanted 4 && for variant in ${VARIANTS:-modul plastic rnn}; do
  while read -r line; do rows+=("$line"); done < <(timeout 120 "$tests/dopa_gpu_bench" "$variant" "$iters" 2>> "$out/bench.log")
  # the backward launched per step, against the default of one launch per segment
  rows+=("$(DOPA_CUDA_STEPWISE=1 timeout 60 "$tests/dopa_gpu_bench" "$variant" "$iters" cuda 2>> "$out/bench.log")")
  rows+=("$(timeout 120 python3 bench/reference/cuda_iteration.py --variant "$variant" --iters "$iters")")
done
cat "$out/bench.log"

section "summary"
printf '%s\n' "${summary[@]}" | tee "$out/summary.txt"
{
  printf '%-15s %-9s %12s %10s %14s\n' engine variant "median s/it" "min s/it" "PyTorch/engine"
  for r in "${rows[@]}"; do
    read -r engine variant med min <<< "$r"
    ref=$(printf '%s\n' "${rows[@]}" | awk -v v="$variant" '$1 == "pytorch" && $2 == v {print $3}')
    printf '%-15s %-9s %12s %10s %14s\n' "$engine" "$variant" "$med" "$min" \
      "$(awk -v a="$ref" -v b="$med" 'BEGIN {if (a > 0 && b > 0) printf "%.1fx", a / b}')"
  done
} | tee -a "$out/summary.txt"
echo "total $(( $(date +%s) - start )) s; $([ "$fail" -eq 0 ] && echo "every check passed" || echo "SOME CHECKS FAILED (above)")"
exit "$fail"

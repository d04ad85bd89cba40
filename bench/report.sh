#!/usr/bin/env bash
# report.sh - the benchmark report from scratch: install, build, sweep, microbenchmarks, profile,
# then docs/benchmarks.md (its generated section) and the charts in docs/images/.
#
#   bash bench/report.sh                                 # the default sweep, about 15 min on 2 cores
#   SWEEP_ARGS="--sweep-networks cue_reward/modul,cue_reward/plastic" bash bench/report.sh
#   SWEEP_ARGS="--full" ...                              # the Cartesian product of H, B and T
#   RESUME=1 bash bench/report.sh                        # continue an interrupted sweep
#
# Every engine runs in its own process with THREADS threads (default 2); nothing else should run
# on the machine meanwhile. Results: OUT/results.json (every run), OUT/machine.json (ceilings),
# OUT/micro.json (Google Benchmark), OUT/perf-generated.txt (where the generated code's time goes).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/bench}
THREADS=${THREADS:-2}
bash scripts/install-deps.sh
bash scripts/build.sh --quiet
mkdir -p "$OUT"
fresh=--fresh
[ "${RESUME:-0}" = 1 ] && fresh=""
# shellcheck disable=SC2086
/usr/bin/python3 bench/sweep.py --out "$OUT" --threads "$THREADS" $fresh ${SWEEP_ARGS:-}

echo "microbenchmarks (Google Benchmark, one element, one thread) ..." >&2
build/bench/dopa_microbench --benchmark_min_time=0.2 --benchmark_format=console \
  --benchmark_out="$OUT/micro.json" --benchmark_out_format=json > "$OUT/micro.txt"

echo "profile of the generated headline run (perf) ..." >&2
if perf record -q -F 999 -g -o "$OUT/perf.data" -- build/bin/dopa bench \
     cue_reward/modul --threads "$THREADS" --iters 5 > /dev/null 2>&1; then
  perf report -i "$OUT/perf.data" --stdio --no-children --sort symbol > "$OUT/perf-report.txt" 2> /dev/null
  # the top 15 symbols (awk reads everything: no SIGPIPE under pipefail)
  awk '/^ +[0-9.]+%/ && n < 15 {print; n++}' "$OUT/perf-report.txt" > "$OUT/perf-generated.txt"
else
  echo "perf is not usable here (kernel.perf_event_paranoid?): no profile in the report" >&2
  rm -f "$OUT/perf-generated.txt"
fi

/usr/bin/python3 bench/report.py --out "$OUT" --doc docs/benchmarks.md --images docs/images \
  --command "bash bench/report.sh${SWEEP_ARGS:+ (SWEEP_ARGS=\"$SWEEP_ARGS\")}"

#!/usr/bin/env bash
# reproduce-cue-reward.sh - the paper's Fig. 1 experiment: four variants x several seeds.
#
# Trains rnn, plastic, modplast and modul on the cue-reward task with the reference settings
# (B=30, 120-step episodes, lr 1e-4, clip 2.0, 101 burn-in iterations; override with the variables
# below), one run per variant and seed under OUT/<variant>/seed<k>/, resumable (rerun the same command
# to continue), then draws the median and inter-quartile range of the batch-mean episode reward over
# the seeds, per variant (OUT/fig1.png, OUT/fig1.csv), as in sr/makefigure.py.
#
#   ITERS=2000 SEEDS="0 1 2" OUT=runs/fig1 scripts/reproduce-cue-reward.sh
#   H=50 EXTRA="--cues 2 --cues-per-trial 1 --lr 1e-3 --burn-in 0 --baseline per-element" ...
#                                            # the demo's simpler, documented configuration
#
# The runs use the generated engine: the examples compiled at build time, at the paper's H=200 or
# at a size in DOPA_EXAMPLE_SIZES (50, 100, 400 by default); ENGINE=generic runs any H.
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${ITERS:-1000}
SEEDS=${SEEDS:-"0 1 2"}
VARIANTS=${VARIANTS:-"rnn plastic modplast modul"}
H=${H:-200}
ENGINE=(--engine "${ENGINE:-generated}")
[ "$H" = 200 ] || ENGINE+=(-D "H=$H")
OUT=${OUT:-runs/fig1}
JOBS=${JOBS:-1}          # runs side by side (each uses THREADS threads)
THREADS=${THREADS:-2}
EXTRA=${EXTRA:-}
dopa=${DOPA:-build/bin/dopa}   # DOPA: another build's dopa tool
[ -x "$dopa" ] || bash scripts/build.sh > /dev/null

run_one() {
  local variant=$1 seed=$2 dir="$OUT/$1/seed$2"
  local resume=""
  [ -f "$dir/checkpoint.st" ] && resume="--resume"
  # shellcheck disable=SC2086
  $dopa train cue-reward --variant "$variant" "${ENGINE[@]}" --iters "$ITERS" --seed "$seed" \
    --threads "$THREADS" --checkpoint-every 100 --out "$dir" $resume $EXTRA > "$dir.out" 2>&1 ||
    { echo "run $variant seed $seed failed; see $dir.out" >&2; return 1; }
  echo "done: $variant seed $seed ($(tail -n 1 "$dir.out"))"
}

# Progress: every PROGRESS_EVERY seconds, the latest progress line of each run (dopa train prints
# one per tenth of the iterations when its output is not a terminal).
progress() {
  while sleep "${PROGRESS_EVERY:-20}"; do
    for f in "$OUT"/*/seed*.out; do
      [ -f "$f" ] || continue
      grep -q '^final mean reward' "$f" && continue # finished: its "done:" line says so
      line=$(grep '|' "$f" | tail -n 1 | sed 's/^\[[#.]*\] //') || true
      [ -n "$line" ] && echo "  $(basename "$(dirname "$f")") $(basename "$f" .out): $line"
    done
  done
}

mkdir -p "$OUT"
start=$(date +%s)
progress &
monitor=$!
trap 'kill $monitor 2> /dev/null || true' EXIT
pids=()
for variant in $VARIANTS; do
  mkdir -p "$OUT/$variant"
  for seed in $SEEDS; do
    run_one "$variant" "$seed" &
    pids+=($!)
    if (( ${#pids[@]} >= JOBS )); then
      wait "${pids[0]}"
      pids=("${pids[@]:1}")
    fi
  done
done
for pid in "${pids[@]}"; do wait "$pid"; done
kill $monitor 2> /dev/null || true
echo "all runs finished in $(( $(date +%s) - start )) s"
title=()
[ -z "${TITLE:-}" ] || title=(--title "$TITLE")
# shellcheck disable=SC2086
/usr/bin/python3 scripts/plot_runs.py --out "$OUT" --variants $VARIANTS "${title[@]}"

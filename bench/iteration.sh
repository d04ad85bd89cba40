#!/usr/bin/env bash
# iteration.sh - one cue-reward training iteration (modul, B=30, H=200, T=120: episode with the
# task in the loop, A2C loss, BPTT, clipping, Adam) timed for the generated C++, the generic
# executor and (PYTORCH=1) the PyTorch formulation, each in its own process, same thread count.
# Prints a table (median seconds per iteration after the first, min, peak RSS) and writes
# OUT/iteration.json.
#
#   bash bench/iteration.sh                       # generated and generic, 8 iterations, 2 threads
#   PYTORCH=1 ITERS=8 THREADS=2 bash bench/iteration.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${ITERS:-8}
THREADS=${THREADS:-2}
VARIANT=${VARIANT:-modul}
OUT=${OUT:-out/bench-iteration}
EXTRA=${EXTRA:-}
dopa=${DOPA:-build/bin/dopa}
[ -x "$dopa" ] || bash scripts/build.sh --quiet
mkdir -p "$OUT"

# median and min of the per-iteration seconds after the first (column 5 of log.csv)
stats() { tail -n +3 "$1" | cut -d, -f5 | sort -g | awk '{a[NR]=$1} END {printf "%.4f %.4f", a[int((NR+1)/2)], a[1]}'; }

run_dopa() {
  local engine=$1 dir="$OUT/$1"
  rm -rf "$dir"
  echo "-- $engine: $ITERS iterations ($THREADS threads)" >&2
  # shellcheck disable=SC2086
  # (Inside $(...) set -e does not act: the status is checked here, so a failed run stops the
  # script instead of printing medians of nothing.)
  if ! /usr/bin/time -f "%M" -o "$OUT/$engine.rss" "$dopa" train cue-reward --variant "$VARIANT" \
    --engine "$engine" --iters "$ITERS" --threads "$THREADS" --checkpoint-every 0 --out "$dir" \
    $EXTRA > /dev/null 2> "$OUT/$engine.err"; then
    echo "iteration.sh: the $engine run failed:" >&2
    tail -n 5 "$OUT/$engine.err" >&2
    return 1
  fi
  read -r med min <<< "$(stats "$dir/log.csv")"
  echo "$engine $med $min $(cat "$OUT/$engine.rss")"
}

[ -x /usr/bin/time ] || { echo "iteration.sh needs /usr/bin/time (Debian: apt install time)" >&2; exit 1; }
rows=()
row=$(run_dopa generated) || exit 1
rows+=("$row")
row=$(run_dopa generic) || exit 1
rows+=("$row")
if [ "${PYTORCH:-0}" = 1 ]; then
  echo "-- pytorch: $ITERS iterations ($THREADS threads)" >&2
  /usr/bin/python3 bench/reference/train_cue_reward.py --variant "$VARIANT" --hs 200 \
    --iters "$ITERS" --threads "$THREADS" --log "$OUT/pytorch.csv" > "$OUT/pytorch.out"
  med=$(tail -n +3 "$OUT/pytorch.csv" | cut -d, -f4 | sort -g | awk '{a[NR]=$1} END {printf "%.4f", a[int((NR+1)/2)]}')
  min=$(tail -n +3 "$OUT/pytorch.csv" | cut -d, -f4 | sort -g | head -1)
  rss=$(grep -o 'peak RSS [0-9]*' "$OUT/pytorch.out" | grep -o '[0-9]*')
  rows+=("pytorch $med $min $((rss * 1024))")
fi

gen_med=$(echo "${rows[0]}" | cut -d' ' -f2)
printf '\n%-10s %14s %10s %12s %10s\n' engine "median s/it" "min s/it" "peak RSS" "vs gen."
json="{\"variant\": \"$VARIANT\", \"threads\": $THREADS, \"iterations\": $ITERS, \"engines\": ["
sep=""
for r in "${rows[@]}"; do
  read -r name med min rss <<< "$r"
  ratio=$(awk -v a="$med" -v b="$gen_med" 'BEGIN {printf "%.1fx", a / b}')
  printf '%-10s %14s %10s %9.1f MB %10s\n' "$name" "$med" "$min" "$(awk -v k="$rss" 'BEGIN {print k / 1024}')" "$ratio"
  json+="$sep{\"engine\": \"$name\", \"median_s\": $med, \"min_s\": $min, \"peak_rss_kb\": $rss}"
  sep=", "
done
echo "$json]}" > "$OUT/iteration.json"
echo "(results: $OUT/iteration.json; host $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"

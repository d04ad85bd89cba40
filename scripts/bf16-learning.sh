#!/usr/bin/env bash
# bf16-learning.sh - does storing the traces in bfloat16 change learning? (issue 15)
#
# Trains the retroactively modulated network (modul) in the demo configurations (scripts/demo.sh)
# twice per seed, with float32 traces and with bfloat16 traces (`--trace-precision bf16`: the
# example's spec compiled on demand), one thread each, one run at a time, and plots the curves side
# by side: cue-reward (H=50, 2 cues, one per trial, 2,000 iterations, seeds 0-2) and the 9x9 maze
# (1,000 iterations, seeds 0-1). About 15 minutes on a free core. Runs already finished are kept;
# one that was interrupted continues from its checkpoint. Results: docs/results.md (2026-12-03,
# ninth session).
#
#   OUT=runs/bf16 bash scripts/bf16-learning.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/bf16}
DOPA=${DOPA:-build/bin/dopa}
mkdir -p "$OUT"

run() { # run NAME ITERS TRAIN-ARGS...
  local name=$1 iters=$2 out="$OUT/$1"
  shift 2
  if [ -f "$out/log.csv" ] && [ "$(($(wc -l < "$out/log.csv") - 1))" -ge "$iters" ]; then
    return
  fi
  local resume=()
  [ -f "$out/checkpoint.st" ] && resume=(--resume) # an interrupted run: continue it
  echo "bf16-learning: $name${resume:+ (resumed)}"
  "$DOPA" train "$@" --iters "$iters" --threads 1 --out "$out" "${resume[@]}" >> "$out.out" 2>&1
}

for seed in 0 1 2; do
  for prec in float bf16; do
    run "cue-modul-$prec-s$seed" 2000 cue-reward --variant modul -D H=50 --seed "$seed" \
      --cues 2 --cues-per-trial 1 --lr 1e-3 --burn-in 0 --baseline per-element --trace-precision "$prec"
  done
done
for seed in 0 1; do
  for prec in float bf16; do
    run "maze-modul-$prec-s$seed" 1000 maze --variant modul --seed "$seed" \
      --task-opt size=9 --eplen 100 --lr 1e-3 --burn-in 0 --baseline per-element --trace-precision "$prec"
  done
done

plot() { # plot PNG TITLE WINDOW PREFIX SEEDS...
  local png=$1 title=$2 window=$3 prefix=$4 args=()
  shift 4
  for s in "$@"; do
    args+=("float32, seed $s=$OUT/$prefix-float-s$s" "bf16, seed $s=$OUT/$prefix-bf16-s$s")
  done
  /usr/bin/python3 scripts/plot_logs.py --out "$png" --window "$window" --title "$title" "${args[@]}"
}
plot "$OUT/bf16-cue-reward.png" "cue-reward demo configuration, modul: float32 vs bf16 traces" 100 \
  cue-modul 0 1 2
plot "$OUT/bf16-maze.png" "maze demo configuration, modul: float32 vs bf16 traces" 50 maze-modul 0 1

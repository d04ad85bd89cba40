#!/usr/bin/env bash
# reproduce-maze.sh - the paper's Fig. 2 experiment: the grid maze, five groups x several seeds.
#
# Trains, on the maze task with `dopa train maze`'s defaults (the reference's settings, maze/batch.py:
# B=30, 200-step episodes, 13x13 maze, reward 10, lr 1e-4, clip 4.0), one run per group and seed
# under OUT/<group>/seed<k>/, resumable (rerun the same command to continue):
#   modplast  --variant modplast            "Simple modulation" (100 neurons)
#   modul     --variant modul               "Retroactive modulation" (100 neurons)
#   plastic   --variant plastic             "Non-modulated plasticity" (H=101, the spec's default)
#   rnn       --variant rnn                 "Non-plastic, 139 neurons" (the spec's default: the
#                                           parameter-matched size)
#   rnn100    --variant rnn -D H=100        "Non-plastic, 100 neurons"
# then draws the median and inter-quartile range over the seeds of the batch-mean episode reward
# against iterations (batches of 30 episodes), as maze/makefigure.py (scripts/plot_runs.py: points
# 100 iterations apart, a 20-point moving average = a 2,000-iteration window, the first 100,000
# iterations), with a star wherever a Wilcoxon rank-sum test between modplast and plastic gives
# p < .05 (needs >= 2 seeds in each; with 3 seeds each, only full separation reaches p < .05; the
# paper shows 9): OUT/fig2.png, OUT/fig2.csv (the plotted curves and the p-values) and
# OUT/summary.csv (group,seeds,iterations,final-median,min,max: the mean reward over the last tenth
# of the iterations).
#
#   ITERS=100000 SEEDS="0 1 2 3 4 5 6 7 8" OUT=runs/fig2 scripts/reproduce-maze.sh   # the paper's
#   ITERS=2000 SEEDS="0 1 2" JOBS=2 THREADS=1 EXTRA="--eplen 100 --task-opt size=9" \
#     OUT=runs/fig2-short scripts/reproduce-maze.sh     # a shorter configuration, for a demo
# EXTRA is passed as is to every `dopa train maze` (task options such as --eplen or --task-opt
# key=value, as `dopa train --help` lists them; --lr ...); the smoothing window shrinks to fit
# short runs (below).
#
# Variables: ITERS (default 1000), SEEDS (default "0 1 2"), VARIANTS (the groups, default
# "modplast modul plastic rnn rnn100"; the name as in reproduce-cue-reward.sh), OUT
# (default runs/fig2), JOBS (runs side by side, default 1), THREADS (per run, default 2), EXTRA,
# ENGINE (default generated), DOPA (another build's dopa tool), WINDOW (the smoothing window in
# iterations, default 2000 as the paper; runs shorter than 4 windows get a window of iterations/20,
# said in the figure), TITLE.
#
# The generated engine runs the examples compiled at build time: the maze specs at their own sizes,
# and for rnn100 the maze rnn example compiled at H=100 (examples/CMakeLists.txt; not in a
# runtime-only build); ENGINE=generic runs any size.
set -euo pipefail
cd "$(dirname "$0")/.."
ITERS=${ITERS:-1000}
SEEDS=${SEEDS:-"0 1 2"}
RUN_GROUPS=${VARIANTS:-"modplast modul plastic rnn rnn100"}
ENGINE=${ENGINE:-generated}
OUT=${OUT:-runs/fig2}
JOBS=${JOBS:-1}          # runs side by side (each uses THREADS threads)
THREADS=${THREADS:-2}
EXTRA=${EXTRA:-}
dopa=${DOPA:-build/bin/dopa}   # DOPA: another build's dopa tool

# Each group: its dopa train arguments, and its legend label as the paper's Fig. 2.
declare -A variant=([modplast]="--variant modplast" [modul]="--variant modul"
  [plastic]="--variant plastic" [rnn]="--variant rnn" [rnn100]="--variant rnn -D H=100")
declare -A label=([modplast]="Simple modulation" [modul]="Retroactive modulation"
  [plastic]="Non-modulated plasticity" [rnn]="Non-plastic, 139 neurons"
  [rnn100]="Non-plastic, 100 neurons")
for group in $RUN_GROUPS; do
  [ -n "${variant[$group]:-}" ] ||
    { echo "unknown group '$group' (known: ${!variant[*]})" >&2; exit 2; }
done
[ -x "$dopa" ] || bash scripts/build.sh --quiet

run_one() {
  local group=$1 seed=$2 dir="$OUT/$1/seed$2"
  local resume=""
  [ -f "$dir/checkpoint.st" ] && resume="--resume"
  # shellcheck disable=SC2086
  $dopa train maze ${variant[$group]} --engine "$ENGINE" --iters "$ITERS" --seed "$seed" \
    --threads "$THREADS" --checkpoint-every 100 --out "$dir" $resume $EXTRA > "$dir.out" 2>&1 ||
    { echo "run $group seed $seed failed; see $dir.out" >&2; return 1; }
  echo "done: $group seed $seed ($(tail -n 1 "$dir.out"))"
}

# shellcheck source=scripts/lib/runs.sh
source scripts/lib/runs.sh
run_all "$RUN_GROUPS" "$SEEDS"
sweep_is_single || exit "$RUNS_FAILED"
labels=() curves=()
for group in $RUN_GROUPS; do
  labels+=(--label "$group=${label[$group]}")
  curves+=("$group=$OUT/$group")
done
/usr/bin/python3 scripts/plot_runs.py --png "$OUT/fig2.png" --csv "$OUT/fig2.csv" \
  --summary "$OUT/summary.csv" --window "${WINDOW:-2000}" --max-iters 100000 \
  --markers modplast,plastic \
  --title "${TITLE:-"grid maze (Fig. 2): median and inter-quartile range over seeds"}" \
  "${labels[@]}" "${curves[@]}"
exit "$RUNS_FAILED" # the figure shows what finished; the exit status says whether all did

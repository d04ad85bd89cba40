#!/usr/bin/env bash
# reproduce-cue-reward.sh - the paper's Fig. 1 experiment: four variants x several seeds.
#
# Trains rnn, plastic, modplast and modul on the cue-reward task with the reference settings
# (B=30, 120-step episodes, lr 1e-4, clip 2.0, 101 burn-in iterations; override with the variables
# below), one run per variant and seed under OUT/<variant>/seed<k>/, resumable (rerun the same command
# to continue), then draws the median and inter-quartile range of the batch-mean episode reward over
# the seeds, per variant, against iterations (batches of 30 episodes), as sr/makefigure.py
# (scripts/plot_runs.py: points 100 iterations apart, a 20-point moving average = a 2,000-iteration
# window, the first 180,000 iterations): OUT/fig1.png, OUT/fig1.csv (the plotted curves) and
# OUT/summary.csv (variant,seeds,iterations,final-median,min,max: the mean reward over the last tenth
# of the iterations; scripts/demo.sh reads it).
#
#   ITERS=2000 SEEDS="0 1 2" OUT=runs/fig1 scripts/reproduce-cue-reward.sh
#   H=50 EXTRA="--cues 2 --cues-per-trial 1 --lr 1e-3 --burn-in 0 --baseline per-element" ...
#                                            # the demo's simpler, documented configuration
#
# Also: VARIANTS (default "rnn plastic modplast modul"), JOBS (runs side by side), THREADS (per run),
# EXTRA (passed to every `dopa train` as is), DOPA (another build's dopa), WINDOW (the smoothing
# window in iterations, default 2000 as the paper; runs shorter than 4 windows get a window of
# iterations/20, said in the figure), TITLE.
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
[ -x "$dopa" ] || bash scripts/build.sh --quiet

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

# shellcheck source=scripts/lib/runs.sh
source scripts/lib/runs.sh
run_all "$VARIANTS" "$SEEDS"
sweep_is_single || exit "$RUNS_FAILED"
# Legend labels as sr/makefigure.py's, with the hidden sizes.
declare -A label=([rnn]="Non-plastic, $H neurons" [plastic]="Non-modulated plastic, $H neurons"
  [modplast]="Simple modulation, $H neurons" [modul]="Retroactive modulation, $H neurons")
labels=() groups=()
for variant in $VARIANTS; do
  labels+=(--label "$variant=${label[$variant]:-$variant}")
  groups+=("$variant=$OUT/$variant")
done
/usr/bin/python3 scripts/plot_runs.py --png "$OUT/fig1.png" --csv "$OUT/fig1.csv" \
  --summary "$OUT/summary.csv" --window "${WINDOW:-2000}" --max-iters 180000 \
  --title "${TITLE:-"cue-reward task (Fig. 1): median and inter-quartile range over seeds"}" \
  "${labels[@]}" "${groups[@]}"
exit "$RUNS_FAILED" # the figure shows what finished; the exit status says whether all did

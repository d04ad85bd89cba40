# runs.sh - sourced by the reproduction scripts (reproduce-cue-reward.sh, reproduce-maze.sh): run
# `run_one GROUP SEED` (the caller's function: one resumable `dopa train` writing OUT/GROUP/seedK.out)
# for every group and seed, JOBS at a time, with a progress monitor, and say how long it all took.
# A run whose checkpoint has reached ITERS is not started again (rerunning a script continues the
# rest); a run that fails is reported and the others go on (RUNS_FAILED=1 afterwards); Ctrl-C or a
# kill stops every run (their checkpoints stay, for the next rerun).

# Every PROGRESS_EVERY seconds, the latest progress line of each unfinished run (dopa train prints
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

# The iterations the checkpoint in DIR has completed (0 when there is none).
checkpoint_iteration() {
  local it
  it=$(head -c 65536 "$1/checkpoint.st" 2> /dev/null | grep -ao '"iteration":"[0-9]*"' |
       grep -o '[0-9]*' | head -n 1) || true
  echo "${it:-0}"
}

# run_all "GROUPS" "SEEDS": every run, JOBS side by side.
RUNS_FAILED=0
RUNS_PIDS=()
run_all() {
  local groups=$1 seeds=$2 start group seed pid
  mkdir -p "$OUT"
  start=$(date +%s)
  progress &
  RUNS_MONITOR=$! # global: the traps run after this function has returned
  trap 'kill "${RUNS_MONITOR:-}" 2> /dev/null || true' EXIT
  trap 'kill "${RUNS_MONITOR:-}" "${RUNS_PIDS[@]}" 2> /dev/null; exit 130' INT TERM
  for group in $groups; do
    mkdir -p "$OUT/$group"
    for seed in $seeds; do
      if (( $(checkpoint_iteration "$OUT/$group/seed$seed") >= ITERS )); then
        echo "done already: $group seed $seed ($ITERS iterations)"
        continue
      fi
      run_one "$group" "$seed" &
      RUNS_PIDS+=($!)
      if (( ${#RUNS_PIDS[@]} >= JOBS )); then
        wait "${RUNS_PIDS[0]}" || RUNS_FAILED=1
        RUNS_PIDS=("${RUNS_PIDS[@]:1}")
      fi
    done
  done
  for pid in "${RUNS_PIDS[@]}"; do wait "$pid" || RUNS_FAILED=1; done
  RUNS_PIDS=()
  kill "$RUNS_MONITOR" 2> /dev/null || true
  echo "all runs finished in $(( $(date +%s) - start )) s"
  (( RUNS_FAILED == 0 )) || echo "some runs failed: see $OUT/*/seed*.out" >&2
}

# runs.sh - sourced by the reproduction scripts (reproduce-cue-reward.sh, reproduce-maze.sh): run
# `run_one GROUP SEED` (the caller's function: one resumable `dopa train` writing OUT/GROUP/seedK.out)
# for every group and seed, JOBS at a time, with a progress monitor, and say how long it all took.

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

# run_all "GROUPS" "SEEDS": every run, JOBS side by side.
run_all() {
  local groups=$1 seeds=$2 start pids=() group seed pid
  mkdir -p "$OUT"
  start=$(date +%s)
  progress &
  RUNS_MONITOR=$! # global: the EXIT trap runs after this function has returned
  trap 'kill "${RUNS_MONITOR:-}" 2> /dev/null || true' EXIT
  for group in $groups; do
    mkdir -p "$OUT/$group"
    for seed in $seeds; do
      run_one "$group" "$seed" &
      pids+=($!)
      if (( ${#pids[@]} >= JOBS )); then
        wait "${pids[0]}"
        pids=("${pids[@]:1}")
      fi
    done
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  kill "$RUNS_MONITOR" 2> /dev/null || true
  echo "all runs finished in $(( $(date +%s) - start )) s"
}

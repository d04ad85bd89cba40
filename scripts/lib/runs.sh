# runs.sh - sourced by the reproduction scripts (reproduce-cue-reward.sh, reproduce-maze.sh): run
# `run_one GROUP SEED` (the caller's function: one resumable `dopa train` writing OUT/GROUP/seedK.out)
# for every group and seed, JOBS at a time, with a progress monitor, and say how long it all took.
# A run whose checkpoint has reached ITERS is not started again (rerunning a script continues the
# rest); a run that fails is reported and the others go on (RUNS_FAILED=1 afterwards); Ctrl-C or a
# kill stops every run (their checkpoints stay, for the next rerun).
#
# Under MPI (mpirun -np N bash scripts/reproduce-maze.sh, or srun --mpi=pmi2 -n N ...) the runs are a
# sweep over the job's ranks: run i (groups, then seeds, in order) goes to rank i mod N, each rank
# running its share JOBS at a time; SWEEP_RANK/SWEEP_SIZE set it by hand. Only rank 0 shows the
# progress monitor; no rank draws the figure (sweep_is_single says so): a plain rerun of the script
# once the job has ended finds every run done and draws it.

# This process's rank in a sweep and the number of ranks (0 and 1 outside MPI).
sweep_rank() { echo "${SWEEP_RANK:-${OMPI_COMM_WORLD_RANK:-${PMI_RANK:-0}}}"; }
sweep_size() { echo "${SWEEP_SIZE:-${OMPI_COMM_WORLD_SIZE:-${PMI_SIZE:-1}}}"; }
# True outside an MPI sweep (the script goes on to draw the figure). A rank's failed runs are
# reported, not its exit status: under mpirun a rank exiting non-zero would end the others' runs.
sweep_is_single() {
  (( $(sweep_size) == 1 )) && return 0
  echo "rank $(sweep_rank) of $(sweep_size): done with its share; rerun the script without mpirun" \
    "once every rank has finished to draw the figure"
  (( RUNS_FAILED == 0 )) || echo "rank $(sweep_rank): some of its runs failed" >&2
  RUNS_FAILED=0
  return 1
}

# Every PROGRESS_EVERY seconds, the latest progress line of each unfinished run (dopa train prints
# one per tenth of the iterations when its output is not a terminal).
# (One-second sleeps: when the monitor is killed, its last sleep ends within a second instead of
# holding the output open, which mpirun waits for.)
progress() {
  local ticks=0
  while sleep 1; do
    (( ++ticks % ${PROGRESS_EVERY:-20} == 0 )) || continue
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

# Stop the runs started so far: each run's children (its dopa), then the run itself.
stop_runs() {
  local pid
  for pid in "${RUNS_PIDS[@]}"; do
    pkill -TERM -P "$pid" 2> /dev/null || true
    kill "$pid" 2> /dev/null || true
  done
}

# run_all "GROUPS" "SEEDS": every run, JOBS side by side.
RUNS_FAILED=0
RUNS_PIDS=()
run_all() {
  local groups=$1 seeds=$2 start group seed pid index=0 rank size var
  rank=$(sweep_rank) size=$(sweep_size)
  if ! [[ $rank =~ ^[0-9]+$ && $size =~ ^[0-9]+$ ]] || (( size < 1 || rank >= size )); then
    echo "sweep: rank '$rank' of '$size' is not a rank of the sweep (0 <= rank < size)" >&2
    exit 2
  fi
  # The runs are single processes, not ranks of this job: keep the rank, drop MPI's environment,
  # and tell dopa so (DOPA_MPI=0: Slurm's step variables stay, and would say "rank").
  export SWEEP_RANK=$rank SWEEP_SIZE=$size DOPA_MPI=0
  for var in $(compgen -e | grep -E '^(OMPI_|PMIX_|PMI_)' || true); do unset "$var"; done
  mkdir -p "$OUT"
  start=$(date +%s)
  if (( rank == 0 )); then
    progress &
    RUNS_MONITOR=$! # global: the traps run after this function has returned
  fi
  trap 'kill "${RUNS_MONITOR:-}" 2> /dev/null || true' EXIT
  # Each run is a subshell with its dopa as a child: a kill of this script (unlike Ctrl-C, which
  # reaches the whole process group) must stop the dopa processes too, not orphan them.
  trap 'kill "${RUNS_MONITOR:-}" 2> /dev/null; stop_runs; exit 130' INT
  trap 'kill "${RUNS_MONITOR:-}" 2> /dev/null; stop_runs; exit 143' TERM
  for group in $groups; do
    mkdir -p "$OUT/$group"
    for seed in $seeds; do
      (( index++ % size == rank )) || continue # another rank's run
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
  kill "${RUNS_MONITOR:-}" 2> /dev/null || true
  echo "all runs$( (( size > 1 )) && echo " of rank $rank") finished in $(( $(date +%s) - start )) s"
  (( RUNS_FAILED == 0 )) || echo "some runs failed: see $OUT/*/seed*.out" >&2
}

#!/usr/bin/env bash
# compare-training.sh BEFORE_DOPA AFTER_DOPA [ROUNDS] - training speed of two builds of dopa in one
# run: `dopa train <task> --variant modul` for each task in TASKS (default "maze cue-reward"),
# alternating the two binaries round by round so that both see the same machine; prints, per task
# and build, each run's median seconds per iteration (log.csv, the first WARM iterations left out)
# and the median of those medians and the fastest iteration. THREADS (default 2), ITERS (default
# 14) and WARM (default 3) set the runs; MPI_RANKS=N runs each under `mpirun -np N` (1 thread each).
set -euo pipefail
before=$1 after=$2 rounds=${3:-6}
threads=${THREADS:-2} iters=${ITERS:-14} warm=${WARM:-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
launch=()
if [ -n "${MPI_RANKS:-}" ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
  export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
  launch=(mpirun -np "$MPI_RANKS")
  threads=1
fi
for r in $(seq "$rounds"); do
  for which in before after; do
    bin=$before; [ "$which" = after ] && bin=$after
    for task in ${TASKS:-maze cue-reward}; do
      rm -rf "$tmp/run"
      "${launch[@]}" "$bin" train "$task" --variant modul --iters "$iters" --seed 3 \
        --threads "$threads" --out "$tmp/run" > /dev/null 2>&1
      tail -n +$((warm + 2)) "$tmp/run/log.csv" | cut -d, -f5 > "$tmp/$which-$task-$r.txt"
      printf '.' >&2
    done
  done
done
echo >&2
/usr/bin/python3 - "$tmp" "$rounds" ${TASKS:-maze cue-reward} <<'PY'
import statistics, sys
tmp, rounds, tasks = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
for task in tasks:
    summary = {}
    for which in ("before", "after"):
        runs = [[float(x) for x in open(f"{tmp}/{which}-{task}-{r}.txt")] for r in range(1, rounds + 1)]
        medians = [statistics.median(run) for run in runs]
        summary[which] = (statistics.median(medians), min(min(run) for run in runs))
        print(f"{task:10s} {which:6s} medians {' '.join(f'{m:.4f}' for m in medians)}  "
              f"median of medians {summary[which][0]:.4f}  best {summary[which][1]:.4f}")
    print(f"{task:10s} after/before: median {summary['after'][0] / summary['before'][0]:.3f}, "
          f"best {summary['after'][1] / summary['before'][1]:.3f}")
PY

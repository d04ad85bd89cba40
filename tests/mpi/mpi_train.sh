#!/usr/bin/env bash
# mpi_train.sh - data-parallel `dopa train` under mpirun, as CTest's mpi.* tests run it.
#
#   mpi_train.sh DOPA SOURCE_DIR SCRATCH CASE
#
# CASE same       2 ranks train the batch that 1 process trains: the same rewards in every
#                 iteration (every rank samples every action, or with a plastic network each runs
#                 its own elements' episodes and they are gathered) and the same parameters after
#                 3 iterations up to float rounding (the gradient is summed in another order).
#      resume     a 2-rank checkpoint resumed by 1 process and a 1-process one by 2 ranks: both
#                 runs end where an uninterrupted run ends (same rewards, parameters to rounding).
#      mismatch   ranks started with different settings stop at once with an error naming them;
#                 so do ranks whose engines would step their episodes differently.
#      killed     a rank killed mid-run ends the job with an error within a minute (no hang), and
#                 the checkpoint left behind is whole.
#      onefails   only rank 0 fails (another process holds the run folder) while rank 1 waits in a
#                 collective: the job ends with an error at once (MPI_Abort), no hang.
#      refused    a command other than `dopa train` started as ranks is refused on each.
#      lm         `dopa train lm`: 2 ranks (the streams split) against 1 process: the same window
#                 losses and gradient norms and parameters up to float rounding, validation and
#                 test perplexities too; a mid-epoch checkpoint (the carried state of every
#                 stream) of 2 ranks resumed by 1 process and the reverse end where a straight run
#                 ends.
#      cuda       `--engine cuda` (cue-reward modul): 2 ranks against 1 process as in `same`, and a
#                 2-rank checkpoint resumed by 1 process and the reverse as in `resume`; the
#                 gradients go through host memory. Exits 77 (SKIP) without a CUDA device.
#      sweep      scripts/reproduce-maze.sh under mpirun: 4 runs shared by 2 ranks (each run once,
#                 no figure); a plain rerun then finds them done and draws the figure.
set -euo pipefail
dopa=$1 root=$2 scratch=$3 case=$4
python=${DOPA_TEST_PYTHON:-/usr/bin/python3} # with numpy
rm -rf "$scratch" && mkdir -p "$scratch" && cd "$scratch"
# CI runs as root in a container: allow it, allow more ranks than cores, no CMA between ranks.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMP_NUM_THREADS=1
mpirun="mpirun -np 2"
common=(train cue-reward --variant rnn --batch 5 --eplen 12 --burn-in 0 --lr 1e-2 --seed 3
        --threads 1 --checkpoint-every 1)
plastic=("${common[@]/rnn/modul}" -D H=50)

# compare A B: the logs' rewards equal, the exported parameters within 1e-4 (relative to max |p|).
compare() {
  cut -d, -f1,2 "$1/log.csv" > a.csv
  cut -d, -f1,2 "$2/log.csv" > b.csv
  cmp a.csv b.csv || { echo "rewards differ:"; paste -d'|' a.csv b.csv; exit 1; }
  "$dopa" export "$1" --out a.safetensors > /dev/null
  "$dopa" export "$2" --out b.safetensors > /dev/null
  "$python" - "$root" <<'PY'
import sys
sys.path.insert(0, sys.argv[1] + "/bench/reference")
import numpy as np
from safetensors_np import load
a, b = load("a.safetensors")[0], load("b.safetensors")[0]
assert a.keys() == b.keys(), (a.keys(), b.keys())
worst = max(float(np.max(np.abs(a[k] - b[k])) / max(float(np.max(np.abs(a[k]))), 1e-6)) for k in a)
print(f"parameters: {len(a)} tensors, worst relative difference {worst:.2e}")
assert worst <= 1e-4, worst  # Adam magnifies rounding in tiny gradients
PY
}

# matches_one ENGINE ARGS...: 2 ranks of `dopa ARGS` (on ENGINE, as their log says) train what 1
# process trains: the same rewards, the same parameters up to float rounding (compare).
matches_one() {
  local engine=$1
  shift
  rm -rf one two
  "$dopa" "$@" --iters 3 --out one > one.log 2>&1 || { cat one.log; exit 1; }
  $mpirun "$dopa" "$@" --iters 3 --out two > two.log 2>&1 || { cat two.log; exit 1; }
  grep -q "engine $engine, 2 ranks" two.log || { cat two.log; exit 1; }
  compare one two
}

# resumes ARGS...: a 2-rank checkpoint of `dopa ARGS` resumed by 1 process and a 1-process one by
# 2 ranks both end where an uninterrupted run ends.
resumes() {
  rm -rf straight a b
  "$dopa" "$@" --iters 4 --out straight > /dev/null 2>&1
  $mpirun "$dopa" "$@" --iters 2 --out a > /dev/null 2>&1
  "$dopa" "$@" --iters 4 --out a --resume > a.log 2>&1
  "$dopa" "$@" --iters 2 --out b > /dev/null 2>&1
  $mpirun "$dopa" "$@" --iters 4 --out b --resume > b.log 2>&1
  grep -q "resuming" a.log || { cat a.log; exit 1; }
  grep -q "resuming" b.log || { cat b.log; exit 1; }
  compare straight a
  compare straight b
}

# fails_with LOG PATTERN CMD...: CMD (a job) ends within 60 s with a non-zero status (not the
# timeout's) and its output, in LOG and shown, holds PATTERN.
fails_with() {
  local log=$1 pattern=$2 rc start
  shift 2
  start=$(date +%s)
  set +e
  timeout 60 "$@" > "$log" 2>&1
  rc=$?
  set -e
  cat "$log"
  echo "exit $rc after $(( $(date +%s) - start )) s"
  [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && grep -q -- "$pattern" "$log"
}

case $case in
same)
  matches_one generated "${common[@]}"
  # A plastic network runs each element's episode on one thread (runElements): each rank runs its
  # own elements' episodes, gathered once per iteration.
  matches_one generated "${plastic[@]}"
  ;;
resume)
  resumes "${common[@]}"
  resumes "${plastic[@]}"
  ;;
mismatch)
  fails_with m.log "the ranks were not started alike: rank 1 differs from rank 0" \
    mpirun -np 1 "$dopa" "${common[@]}" --iters 2 --out m : \
    -np 1 "$dopa" "${common[@]}" --iters 2 --clip 0.5 --out m
  # One rank's engine steps in lock step (stage-major), the other's runs elements: stopped before
  # their collectives could differ.
  fails_with o.log "the ranks ran their episodes differently" \
    mpirun -np 1 env DOPA_STAGE_ORDER=stage "$dopa" "${plastic[@]}" --iters 2 --out o : \
    -np 1 "$dopa" "${plastic[@]}" --iters 2 --out o
  ;;
killed)
  $mpirun "$dopa" "${common[@]}" --iters 100000 --out k > k.log 2>&1 &
  job=$!
  for _ in $(seq 1 100); do [ -s k/checkpoint.st ] && break; sleep 0.2; done
  victim=$(pgrep -f -- "--out k" | grep -v "^$job\$" | tail -n 1)
  kill -9 "$victim"
  start=$(date +%s)
  set +e
  timeout 60 tail --pid="$job" -f /dev/null
  waited=$?
  wait "$job"
  rc=$?
  set -e
  echo "mpirun exit $rc after $(( $(date +%s) - start )) s"
  [ "$waited" -eq 0 ] || { echo "the job did not end within 60 s"; kill -9 "$job"; exit 1; }
  [ "$rc" -ne 0 ]
  "$dopa" export k --out k.safetensors > /dev/null  # the checkpoint left behind loads
  ;;
onefails)
  mkdir -p f
  exec 9> f/.lock && flock 9 # this shell holds the run folder, as another dopa train would
  fails_with f.log "in use by another" $mpirun "$dopa" "${common[@]}" --iters 2 --out f
  exec 9>&-
  ;;
refused)
  fails_with r.log "only \`dopa train\` runs data-parallel" $mpirun "$dopa" cache dir
  ;;
lm)
  # A PTB-like corpus of 12 words (every word of valid and test occurs in train).
  mkdir -p ptb
  words=(ba ko ri te mu sa lo ne di pa vu zo)
  RANDOM=7
  for f in train:300 valid:40 test:40; do
    for _ in $(seq 1 "${f#*:}"); do
      line=""
      for _ in $(seq 1 $((3 + RANDOM % 8))); do line+=" ${words[RANDOM % 12]}"; done
      echo "$line "
    done > "ptb/ptb.${f%%:*}.txt"
  done
  # modplast_lstm: the large model's spec at tiny dims, with awd-lstm-lm's recipe (its default): the
  # dropout masks (each rank keeps its slice of the window's draw), variable BPTT, AR/TAR, agdiv,
  # and averaged SGD from epoch 2 (the average's sum in the checkpoints).
  lm=(train lm --model modplast_lstm --engine generic -D V=13 -D E=6 -D H=5 --data ptb
      --no-verify --batch 4 --bptt 5 --limit-batches 6 --threads 1 --seed 2 --checkpoint-every 1
      --lr 1 --asgd-after 1)
  "$dopa" "${lm[@]}" --epochs 2 --out one > one.log 2>&1 || { cat one.log; exit 1; }
  $mpirun "$dopa" "${lm[@]}" --epochs 2 --out two > two.log 2>&1 || { cat two.log; exit 1; }
  grep -q "engine generic, 2 ranks" two.log || { cat two.log; exit 1; }
  # Stopped mid-epoch 1 after 3 windows (the checkpoint holds the carried state of every
  # stream), then resumed to the end of epoch 2 by the other kind of run.
  $mpirun "$dopa" "${lm[@]}" --epochs 2 --stop-after 3 --out a > a.log 2>&1 || { cat a.log; exit 1; }
  "$dopa" "${lm[@]}" --epochs 2 --stop-after 3 --out b > b.log 2>&1 || { cat b.log; exit 1; }
  grep -q "stopped after 3 windows" a.log || { cat a.log; exit 1; }
  grep -q "stopped after 3 windows" b.log || { cat b.log; exit 1; }
  "$python" - "$root" a/checkpoint.st b/checkpoint.st <<'PY'
import sys
sys.path.insert(0, sys.argv[1] + "/bench/reference")
import numpy as np
from safetensors_np import load
(ta, ma), (tb, mb) = load(sys.argv[2]), load(sys.argv[3])
assert ma["next_window"] == mb["next_window"] == "3", (ma["next_window"], mb["next_window"])
worst = float(np.max(np.abs(ta["state.l1.hebb"] - tb["state.l1.hebb"])))
print(f"mid-epoch checkpoints: state [{'x'.join(map(str, ta['state.l1.hebb'].shape))}], 2 ranks vs 1: {worst:.1e}")
assert ta["state.l1.hebb"].shape[0] == 4 and worst <= 1e-5, worst
PY
  mv a a-at && mv b b-at
  "$dopa" "${lm[@]}" --epochs 2 --out a-at --resume > a.log 2>&1 || { cat a.log; exit 1; }
  $mpirun "$dopa" "${lm[@]}" --epochs 2 --out b-at --resume > b.log 2>&1 || { cat b.log; exit 1; }
  # The test perplexity (one stream: on rank 0, the other rank evaluates nothing) agrees too.
  test_ppl() { sed -n 's/.*test perplexity \([0-9.]*\).*/\1/p' "$1"; }
  for log in two.log a.log b.log; do
    awk -v a="$(test_ppl one.log)" -v b="$(test_ppl $log)" \
      'BEGIN { d = a - b; if (a == "" || b == "" || d * d > 1e-4 * a * a) exit 1 }' ||
      { echo "test perplexity: one.log $(test_ppl one.log), $log $(test_ppl $log)"; exit 1; }
  done
  for run in two a-at b-at; do
    "$dopa" export one --out one.safetensors > /dev/null
    "$dopa" export "$run" --out run.safetensors > /dev/null
    "$python" - "$root" one "$run" <<'PY'
import csv, sys
sys.path.insert(0, sys.argv[1] + "/bench/reference")
import numpy as np
from safetensors_np import load
one, run = sys.argv[2], sys.argv[3]
rows = lambda d, f: list(csv.DictReader(open(f"{d}/{f}")))
a, b = rows(one, "log.csv"), rows(run, "log.csv")
assert len(a) == len(b) == 12, (len(a), len(b))
for x, y in zip(a, b):
    for k in ("loss", "grad_norm"):
        assert abs(float(x[k]) - float(y[k])) <= 1e-4 * abs(float(x[k])), (run, x, y)
for x, y in zip(rows(one, "epochs.csv"), rows(run, "epochs.csv")):
    for k in x:
        if "perplexity" in k:
            assert abs(float(x[k]) - float(y[k])) <= 1e-4 * abs(float(x[k])), (run, k, x, y)
p, q = load("one.safetensors")[0], load("run.safetensors")[0]
worst = max(float(np.max(np.abs(p[k] - q[k])) / max(float(np.max(np.abs(p[k]))), 1e-6)) for k in p)
print(f"{run}: 12 windows, losses and norms to 1e-4, parameters to {worst:.1e}")
assert worst <= 1e-4, worst
PY
  done
  ;;
cuda)
  cu=(train cue-reward --variant modul --engine cuda --batch 6 --eplen 12 --burn-in 0 --lr 1e-3
      --seed 3 --threads 1 --checkpoint-every 1)
  set +e
  "$dopa" "${cu[@]}" --iters 1 --out probe > probe.log 2>&1
  rc=$?
  set -e
  if grep -qE "no usable CUDA device|built without CUDA" probe.log; then
    echo "SKIP: $(grep -m1 -E "no usable CUDA device|built without CUDA" probe.log)"
    exit 77
  fi
  [ "$rc" -eq 0 ] || { cat probe.log; exit 1; }
  matches_one cuda "${cu[@]}"
  resumes "${cu[@]}"
  ;;
sweep)
  sweep=(env ENGINE=generic ITERS=3 SEEDS='0 1' VARIANTS='modplast plastic' JOBS=1 THREADS=1
         OUT="$scratch/fig2" DOPA="$dopa" PROGRESS_EVERY=600
         EXTRA='--eplen 10 --batch 2 --task-opt size=5 -D H=4')
  (cd "$root" && $mpirun "${sweep[@]}" bash scripts/reproduce-maze.sh) > sweep.log 2>&1 ||
    { cat sweep.log; exit 1; }
  cat sweep.log
  [ "$(grep -c '^done: ' sweep.log)" -eq 4 ] && [ ! -e fig2/fig2.png ]
  grep -q "rank 1 of 2: done with its share" sweep.log
  (cd "$root" && "${sweep[@]}" bash scripts/reproduce-maze.sh) > rerun.log 2>&1 ||
    { cat rerun.log; exit 1; }
  [ "$(grep -c '^done already: ' rerun.log)" -eq 4 ] && [ -s fig2/fig2.png ]
  ;;
*)
  echo "unknown case $case"; exit 2 ;;
esac
echo "mpi $case: ok"

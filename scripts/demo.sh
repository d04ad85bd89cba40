#!/usr/bin/env bash
# demo.sh - the main job: install what is needed, build, and show what dopa does today.
#
#  1. every network of the Backpropamine paper, written as a spec, checked and summarized, with its
#     parameter count next to the reference code's;
#  2. exact gradients: dopa's backpropagation through time for the retroactive-neuromodulation network
#     against an independent PyTorch implementation of the paper's equations;
#  3. a short training run of that network on the cue-reward task (A2C), with progress, a log and a
#     learning-curve plot. (Learning the task takes far longer than a demo; the fast generated engine
#     that makes it practical is the next step, see the issues.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh > /dev/null
dopac=build/compiler/tools/dopac/dopac

echo
echo "== The retroactive-neuromodulation network of the cue-reward task, as dopac sees it"
echo "   (examples/cue_reward/modul.dopa)"
echo
$dopac examples/cue_reward/modul.dopa | sed 's/^/   /'

# Parameter counts of the reference code (shared/reference/backpropamine.md); the cue-reward
# modplast/modul reference modules hold one unused `eta` more, which the specs leave out.
declare -A reference=(
  [cue_reward/rnn]=46203 [cue_reward/plastic]=86204 [cue_reward/modplast]="86405 (86404 + unused eta)"
  [cue_reward/modul]="86406 (86405 + unused eta)"
  [maze/rnn]=22523 [maze/plastic]=22731 [maze/modplast]=22406 [maze/modul]=22407
  [lm/lstm]=24221600 [lm/modplast_lstm]=24198893 [lm/plastic_lstm]="-" [lm/modul_lstm]="-")
echo
echo "== Every example spec: checked, and its parameter count against the reference code"
echo
printf '   %-26s %-18s %12s   %s\n' spec network parameters reference
for spec in examples/cue_reward/*.dopa examples/maze/*.dopa examples/lm/*_lstm.dopa examples/lm/lstm.dopa; do
  key=${spec#examples/}; key=${key%.dopa}
  out=$($dopac -Werror "$spec")
  name=$(sed -n 's/^network //p' <<<"$out")
  params=$(sed -n 's/^  parameters: \([0-9]*\) .*/\1/p' <<<"$out")
  printf '   %-26s %-18s %12s   %s\n' "$key" "$name" "$params" "${reference[$key]}"
done
echo
echo "All specs check cleanly. Try: $dopac --emit=ir-grad examples/maze/modul.dopa"

echo
echo "== Exact gradients: dopa vs PyTorch on the cue-reward modul network (H=7, 15 steps, 3 episodes,"
echo "   parameters large enough that the plastic weights hit their clip), float64"
echo
/usr/bin/python3 tests/pytorch/compare_pytorch.py --dopa build/runtime/tools/dopa/dopa --case cue_reward.modul |
  sed 's/^/   /'

echo
echo "== Training: 60 iterations of A2C on the cue-reward task (modul at the paper's H=200, batch 30,"
echo "   120-step episodes), with the C++ generated from examples/cue_reward/modul.dopa at build time"
echo
rm -rf out/demo-train
build/runtime/tools/dopa/dopa train cue-reward --variant modul --lr 1e-3 --iters 60 \
  --checkpoint-every 20 --out out/demo-train 2>&1 | sed 's/^/   /'
echo
echo "   log: out/demo-train/log.csv   plot: out/demo-train/learning_curve.png"
echo "   continue it: build/runtime/tools/dopa/dopa train cue-reward --variant modul --lr 1e-3 \\"
echo "                --iters 120 --checkpoint-every 20 --out out/demo-train --resume"

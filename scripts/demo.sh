#!/usr/bin/env bash
# demo.sh - the main job: install what is needed, build, and compile every example spec.
#
# For now dopa's front end is what exists: every network of the Backpropamine paper is written as a
# spec, checked, and summarized, with its parameter count next to the reference code's.
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
echo "All specs check cleanly. Try: $dopac --emit=ast examples/maze/modul.dopa"

//===- Precision.cpp - Traces stored in bfloat16 (dopac --trace-precision=bf16) ===//
//
// The storeTracesInBf16 pass. A plastic network's per-element time goes into streaming its
// matrix-shaped states (the Hebbian traces, H x H per batch element) through the cache every step;
// storing them in bfloat16 halves those bytes while the arithmetic stays float. The pass marks
// every matrix-shaped state of the network (ir::Variable::bf16; not the carried products, which
// are vectors) and rounds its next value with round_bf16, so that what the step computes from
// the next value in the same step (a carried product, an output) is what the next step will read
// back from the 16-bit storage. round_bf16 is the identity in the double build and its gradient
// is the identity (straight-through): the stored value is treated as the computed one. The
// emitters view the marked states' slots as bfloat16 (runtime/include/dopa/runtime/Bf16.h).
//
//===----------------------------------------------------------------------===//
#include "dopa/compiler/Passes.h"

using namespace dopa;
using namespace dopa::ir;

Graph dopa::storeTracesInBf16(const Graph &forward) {
  Graph out = forward;
  if (out.isBackward)
    return out;
  for (size_t s = 0; s < out.states.size(); ++s) {
    Variable &v = out.states[s];
    if (v.carried || v.isInt || v.bf16 || v.shape.size() < 2)
      continue;
    v.bf16 = true;
    int update = out.stateUpdates[s];
    Node round(Op::RoundBf16);
    round.operands = {update};
    round.loc = out.node(update).loc;
    out.stateUpdates[s] = append(out, std::move(round));
  }
  return out;
}

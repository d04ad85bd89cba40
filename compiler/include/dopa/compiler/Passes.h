//===- Passes.h - The compiler passes: lowering, autodiff, checks ---------===//
//
// Each pass is a pure function from its input to a new value; runPipeline (Pipeline.h) runs them in
// a straight line, then kern::fuse, with the IR verifier between them when asked (always in tests):
//
//   sema::Network --lower--> forward ir::Graph --batchReadouts--> --storeTracesInBf16-->
//                           --carryProducts-->
//                           \--checkLearnable       --differentiate--> --simplifyBackward-->
//                                                   backward (and the prologue's)
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/compiler/IR.h"
#include "dopa/dsl/Diagnostics.h"
#include "dopa/dsl/Sema.h"

#include <cstdint>
#include <optional>

namespace dopa {

/// Lower a checked network to its forward step graph (layers inlined, names qualified).
ir::Graph lower(const sema::Network &network);

/// Reverse-mode differentiation of one step: the backward step graph (see IR.h). With
/// `inputGradients`, it also gives dLoss/d each real input (Graph::inputGrads), for clients that
/// backpropagate into what feeds the network (the Python module); training does not need them.
ir::Graph differentiate(const ir::Graph &forward, bool inputGradients = false);

/// Take the outputs of the form W @ x (+ b) whose weight W has at least `minWeightNumel` elements
/// out of the step kernels (Readouts.cpp; ir::Readout): the kernels write x, the runtime computes
/// the output for the whole batch with a GEMM and its gradients in the backward. A negative
/// `minWeightNumel` leaves the graph as it is. Pure; for the C++ target only (the generic executor
/// and the CUDA backend run whole graphs).
ir::Graph batchReadouts(const ir::Graph &forward, int64_t minWeightNumel);

/// The readout threshold `dopac --batched-readouts=auto` uses: weights of at least this many
/// elements (256 KB in float) are read once per step for the batch instead of once per element.
/// Smaller ones (the RL tasks' policy and value heads) stay in the fused step kernel, where they
/// cost nothing extra.
constexpr int64_t kAutoReadoutMinNumel = 65536;

/// Simplify a backward step graph (Simplify.cpp): scalar factors move out of matrix-vector
/// products, the sum of a matrix times an outer product becomes a vector dot product, and equal
/// nodes are merged, so that the loops over the traces do fewer operations per element. Exact in
/// real arithmetic. `forward` is the graph `backward` was differentiated from. Pure.
ir::Graph simplifyBackward(const ir::Graph &forward, const ir::Graph &backward);

/// Store the network's matrix-shaped states (its traces) in bfloat16 in the float build
/// (Precision.cpp; dopac --trace-precision=bf16): mark them (ir::Variable::bf16) and round their
/// next values with round_bf16 (identity in double, straight-through gradient). Pure; for the C++
/// target.
ir::Graph storeTracesInBf16(const ir::Graph &forward);

/// The carryProducts pass's result: the step with each carried product read from a state of its
/// own (and computed for the next step from the next states), and the prologue that computes the
/// carried states from the user states (which it leaves unchanged). Without carried products,
/// `step` is the forward graph and `prologue` is empty.
struct CarriedProducts {
  ir::Graph step, prologue;
};

/// Carry the step's state-only matrix products over the step boundary (Carry.cpp): a product of
/// parameters and states that reads a matrix-shaped state is computed by the previous step, in the
/// pass that updates that state. Pure; for the C++ target (the CUDA backend runs whole graphs).
CarriedProducts carryProducts(const ir::Graph &forward);

/// Report parameters that can never receive a gradient (no output depends on them at any step, or
/// only through `detach`). Returns false when there were errors.
bool checkLearnable(const ir::Graph &forward, DiagnosticEngine &diags);

/// The compiled form of a network: its forward and backward step graphs (runPipeline builds it).
struct CompiledNetwork {
  ir::Graph forward;
  ir::Graph backward;
  /// With carried products (carryProducts): the prologue's forward and backward graphs; empty
  /// (no nodes) otherwise.
  ir::Graph prologue, prologueBackward;
  bool hasPrologue() const { return !prologue.nodes.empty(); }
};

} // namespace dopa

//===- Passes.h - The compiler passes: lowering, autodiff, checks ---------===//
//
// Each pass is a pure function from its input to a new value; runPipeline (Pipeline.h) runs them in
// a straight line, then kern::fuse, with the IR verifier between them when asked (always in tests):
//
//   sema::Network --lower--> forward ir::Graph --differentiate--> backward ir::Graph
//                           \--checkLearnable (diagnostics at the spec's locations)
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/compiler/IR.h"
#include "dopa/dsl/Diagnostics.h"
#include "dopa/dsl/Sema.h"

#include <optional>

namespace dopa {

/// Lower a checked network to its forward step graph (layers inlined, names qualified).
ir::Graph lower(const sema::Network &network);

/// Reverse-mode differentiation of one step: the backward step graph (see IR.h). With
/// `inputGradients`, it also gives dLoss/d each real input (Graph::inputGrads), for clients that
/// backpropagate into what feeds the network (the Python module); training does not need them.
ir::Graph differentiate(const ir::Graph &forward, bool inputGradients = false);

/// Report parameters that can never receive a gradient (no output depends on them at any step, or
/// only through `detach`). Returns false when there were errors.
bool checkLearnable(const ir::Graph &forward, DiagnosticEngine &diags);

/// The compiled form of a network: its forward and backward step graphs (runPipeline builds it).
struct CompiledNetwork {
  ir::Graph forward;
  ir::Graph backward;
};

} // namespace dopa

//===- Pipeline.h - The compiler pipeline, from a network to its kernels --===//
//
// One function runs the passes in a straight line for every client (dopac, dopa, the tests):
//
//   sema::Network --lower--> forward ir::Graph --batchReadouts--> --differentiate--> backward
//                           \--checkLearnable        both graphs --kern::fuse--> kern::FusedNetwork
//
// with the IR verifier after each pass that builds a graph and an optional hook after every pass
// (dopac --print-after-each). compileSpec puts the front end in front of it: load a spec file,
// check it with dimension overrides, pick one network.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/compiler/Kernel.h"
#include "dopa/compiler/Passes.h"
#include "dopa/dsl/Frontend.h"

#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

namespace dopa {

/// What the pipeline builds for one network.
struct PipelineResult {
  /// The forward and backward step graphs.
  CompiledNetwork graphs;
  /// Their kernels; absent when PipelineOptions::fuse is off.
  std::optional<kern::FusedNetwork> fused;
};

struct PipelineOptions {
  /// Run ir::verify after lowering and after autodiff; invalid IR is an internal error (abort).
  bool verifyEach = true;
  /// Fuse the graphs into kernels (the emitters need them, the generic executor does not).
  bool fuse = true;
  /// Differentiate with respect to the real inputs too (ir::Graph::inputGrads; dopac
  /// --input-gradients, the Python module).
  bool inputGradients = false;
  /// Outputs W @ x (+ b) with at least this many weight elements become batched readouts
  /// (batchReadouts; the C++ target: dopac --batched-readouts, the on-demand compiler); negative:
  /// none (the generic executor and the CUDA backend, which run whole graphs).
  int64_t batchedReadoutMin = -1;
  /// Carry state-only matrix products over the step boundary (carryProducts; the C++ target:
  /// dopac --carry-products, the on-demand compiler). Off for the generic executor and CUDA.
  bool carryProducts = false;
  /// Store the traces (matrix-shaped states) in bfloat16 in the float build (storeTracesInBf16;
  /// dopac --trace-precision=bf16, the on-demand compiler's CompileRequest::traceBf16). C++ only.
  bool traceBf16 = false;
  /// Simplify the backward graphs (simplifyBackward: fewer operations per trace element; exact in
  /// real arithmetic). On for every target; off only to compare (dopac --simplify=false).
  bool simplify = true;
  /// Called after each pass that ran ("lower", "check-learnable", "batch-readouts",
  /// "trace-precision", "carry-products", "autodiff", "simplify", "fuse") with what the pipeline
  /// has built so far.
  std::function<void(llvm::StringRef pass, const PipelineResult &built)> afterPass;
};

/// Run the pipeline on one checked network. Returns nullopt when diagnostics were reported: a
/// parameter that can never learn, or a network the kernels cannot express.
std::optional<PipelineResult> runPipeline(const sema::Network &network, DiagnosticEngine &diags,
                                          const PipelineOptions &options = {});

/// Dimension overrides (DimOverrides.h's parser gives them) as sema takes them.
sema::DimOverrides toDimOverrides(const std::map<std::string, int64_t> &dims);

/// Load the spec at `path` into `frontend` (its include path and diagnostics; it keeps the sources
/// the result's locations point into), check it with `dims` and run the pipeline on the network
/// named `network`, or on the spec's only network when `network` is empty. Returns nullopt when
/// diagnostics were reported.
std::optional<PipelineResult> compileSpec(Frontend &frontend, llvm::StringRef path,
                                          const std::map<std::string, int64_t> &dims,
                                          llvm::StringRef network,
                                          const PipelineOptions &options = {});

} // namespace dopa

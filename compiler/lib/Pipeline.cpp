//===- Pipeline.cpp - The compiler pipeline, from a network to its kernels ===//
//
// Runs lower, checkLearnable, batchReadouts, storeTracesInBf16 and carryProducts (when asked),
// differentiate, simplifyBackward and kern::fuse in a straight line with the IR verifier and the
// caller's hook between them, and the front end before them for a spec file. A network the fusion
// pass cannot express is a diagnostic; IR that fails the verifier is a compiler bug.
//
//===----------------------------------------------------------------------===//
#include "dopa/compiler/Pipeline.h"

#include "llvm/Support/raw_ostream.h"

#include <cstdlib>
#include <exception>

using namespace dopa;

namespace {
/// ir::verify after a pass: invalid IR is an internal error, not a diagnostic.
void verifyOrAbort(const ir::Graph &graph, const char *after) {
  std::string errors;
  llvm::raw_string_ostream os(errors);
  if (ir::verify(graph, os))
    return;
  llvm::errs() << "internal error: invalid IR after " << after << ":\n" << os.str();
  std::abort();
}
} // namespace

std::optional<PipelineResult> dopa::runPipeline(const sema::Network &network,
                                                DiagnosticEngine &diags,
                                                const PipelineOptions &options) {
  PipelineResult out;
  auto passDone = [&](llvm::StringRef pass) {
    if (options.afterPass)
      options.afterPass(pass, out);
  };
  out.graphs.forward = lower(network);
  if (options.verifyEach)
    verifyOrAbort(out.graphs.forward, "lowering");
  passDone("lower");
  if (!checkLearnable(out.graphs.forward, diags))
    return std::nullopt;
  passDone("check-learnable");
  if (options.batchedReadoutMin >= 0) {
    out.graphs.forward = batchReadouts(out.graphs.forward, options.batchedReadoutMin);
    if (options.verifyEach)
      verifyOrAbort(out.graphs.forward, "batch-readouts");
    passDone("batch-readouts");
  }
  if (options.traceBf16) {
    out.graphs.forward = storeTracesInBf16(out.graphs.forward);
    if (options.verifyEach)
      verifyOrAbort(out.graphs.forward, "trace-precision");
    passDone("trace-precision");
  }
  if (options.carryProducts) {
    CarriedProducts carried = carryProducts(out.graphs.forward);
    out.graphs.forward = std::move(carried.step);
    out.graphs.prologue = std::move(carried.prologue);
    if (options.verifyEach) {
      verifyOrAbort(out.graphs.forward, "carry-products");
      if (out.graphs.hasPrologue())
        verifyOrAbort(out.graphs.prologue, "carry-products (prologue)");
    }
    passDone("carry-products");
  }
  out.graphs.backward = differentiate(out.graphs.forward, options.inputGradients);
  if (options.verifyEach)
    verifyOrAbort(out.graphs.backward, "autodiff");
  if (out.graphs.hasPrologue()) {
    out.graphs.prologueBackward = differentiate(out.graphs.prologue);
    if (options.verifyEach)
      verifyOrAbort(out.graphs.prologueBackward, "autodiff (prologue)");
  }
  passDone("autodiff");
  if (options.simplify) {
    out.graphs.backward = simplifyBackward(out.graphs.forward, out.graphs.backward);
    if (options.verifyEach)
      verifyOrAbort(out.graphs.backward, "simplify");
    if (out.graphs.hasPrologue()) {
      out.graphs.prologueBackward =
          simplifyBackward(out.graphs.prologue, out.graphs.prologueBackward);
      if (options.verifyEach)
        verifyOrAbort(out.graphs.prologueBackward, "simplify (prologue)");
    }
    passDone("simplify");
  }
  if (!options.fuse)
    return out;
  try {
    out.fused = kern::fuse(out.graphs);
  } catch (const std::exception &e) {
    diags.errorNoLoc(std::string("cannot generate code for network '") + network.name +
                     "': " + e.what());
    return std::nullopt;
  }
  passDone("fuse");
  return out;
}

sema::DimOverrides dopa::toDimOverrides(const std::map<std::string, int64_t> &dims) {
  sema::DimOverrides out;
  for (const auto &[name, value] : dims)
    out[name] = value;
  return out;
}

std::optional<PipelineResult> dopa::compileSpec(Frontend &frontend, llvm::StringRef path,
                                                const std::map<std::string, int64_t> &dims,
                                                llvm::StringRef network,
                                                const PipelineOptions &options) {
  if (!frontend.parseFile(path))
    return std::nullopt;
  sema::DimOverrides overrides = toDimOverrides(dims);
  auto program = frontend.check(overrides.empty() ? nullptr : &overrides);
  if (!program)
    return std::nullopt;
  DiagnosticEngine &diags = frontend.getDiagnostics();
  const sema::Network *net = nullptr;
  if (network.empty()) {
    if (program->networks.size() != 1) {
      diags.errorNoLoc(path.str() + " has " + std::to_string(program->networks.size()) +
                       " networks; choose one with --network");
      return std::nullopt;
    }
    net = program->networks.front().get();
  } else {
    net = program->find(network);
  }
  if (!net) {
    diags.errorNoLoc("no network named '" + network.str() + "' in " + path.str());
    return std::nullopt;
  }
  return runPipeline(*net, diags, options);
}

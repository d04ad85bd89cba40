//===- GenericEngine.cpp - The generic engine: specs through the compiler --===//
//
// The full build's generic engine: load a spec with the front end, run the compiler's pipeline up
// to the step graphs, and interpret them with the generic executor (any spec, any -D, float or
// double). Diagnostics go to stderr with the spec's locations.
//
//===----------------------------------------------------------------------===//
#include "Console.h"
#include "Engines.h"
#include "GradRun.h"

#include "dopa/compiler/Pipeline.h"
#include "dopa/generic/Executor.h"
#include "dopa/runtime/DimOverrides.h"

using namespace dopa;
using namespace dopa::tool;

namespace {

/// Load, check and compile one network of a spec to its step graphs; nullopt after diagnostics.
std::optional<CompiledNetwork> loadNetwork(const SpecOptions &options) {
  DimParse dims = parseDimOverrides(options.dimOverrides);
  if (!dims.ok()) {
    printError("dopa", dims.error);
    return std::nullopt;
  }
  Frontend frontend(options.includeDirs);
  PipelineOptions pipeline;
  pipeline.fuse = false; // the generic executor runs the graphs
  auto compiled = compileSpec(frontend, options.path, dims.dims, options.network, pipeline);
  if (!compiled)
    return std::nullopt;
  return std::move(compiled->graphs);
}

} // namespace

bool tool::haveGenericEngine() { return true; }

EngineNetwork tool::makeGenericNetwork(const SpecOptions &spec, const std::string &) {
  EngineNetwork out;
  auto compiled = loadNetwork(spec);
  if (!compiled) {
    out.exitCode = 1;
    return out;
  }
  ir::FlopCount fwd = ir::countFlops(compiled->forward), bwd = ir::countFlops(compiled->backward);
  out.flops = {fwd.perElement, fwd.shared, bwd.perElement, bwd.shared};
  out.inputRows = ir::gatherTableRows(compiled->forward);
  out.net = std::make_unique<GenericNetwork>(std::move(*compiled));
  return out;
}

int tool::runGenericGrad(const GradOptions &opt) {
  auto net = loadNetwork(opt.spec);
  if (!net)
    return 1;
  try {
    if (opt.doublePrecision) {
      Executor<double> exec(net->forward, net->backward);
      return grad::runWith(opt, exec);
    }
    Executor<float> exec(net->forward, net->backward);
    return grad::runWith(opt, exec);
  } catch (const std::exception &e) {
    printError("dopa grad", e.what());
    return 1;
  }
}

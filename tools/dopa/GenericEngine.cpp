//===- GenericEngine.cpp - The generic engine: specs through the compiler --===//
//
// The full build's generic engine: load a spec with the front end, run the compiler's pipeline up
// to the step graphs, and interpret them with the generic executor (any spec, any -D, float or
// double). Diagnostics go to stderr with the spec's locations. A run whose parameters, tape and
// values cannot fit in memory is refused from the graphs, before the executor allocates anything.
//
//===----------------------------------------------------------------------===//
#include "Console.h"
#include "Engines.h"
#include "GradRun.h"

#include "dopa/compiler/Pipeline.h"
#include "dopa/generic/Executor.h"
#include "dopa/runtime/DimOverrides.h"
#include "dopa/runtime/Memory.h"

#include <algorithm>
#include <vector>

using namespace dopa;
using namespace dopa::tool;

namespace {

/// Load, check and compile one network of a spec to its step graphs; nullopt after diagnostics.
/// exitCode: 2 for a malformed -D (a usage error, as the generated engine says), else 1.
std::optional<CompiledNetwork> loadNetwork(const SpecOptions &options, int &exitCode) {
  DimParse dims = parseDimOverrides(options.dimOverrides);
  if (!dims.ok()) {
    printError("dopa", dims.error);
    exitCode = 2;
    return std::nullopt;
  }
  exitCode = 1;
  DiagnosticEngine::setProgramName("dopa"); // for the errors without a place in the spec
  Frontend frontend(options.includeDirs);
  PipelineOptions pipeline;
  pipeline.fuse = false; // the generic executor runs the graphs
  auto compiled = compileSpec(frontend, options.path, dims.dims, options.network, pipeline);
  if (!compiled)
    return std::nullopt;
  return std::move(compiled->graphs);
}

/// Elements of all the parameters of a forward graph.
int64_t paramElements(const ir::Graph &forward) {
  int64_t n = 0;
  for (const ir::Variable &p : forward.params)
    n = saturatingAdd(n, ir::numElements(p.shape));
  return n;
}

/// What the generic engine needs for an iteration, from the graphs, before its executor allocates
/// anything: the parameters, their gradients and Adam's two moments; what the executor holds over
/// the episode (estimateEpisodeBytes); and the caller's per-step buffers.
MemoryEstimate genericEstimate(const CompiledNetwork &c, const EngineRequest &req) {
  const ir::Graph &fwd = c.forward, &bwd = c.backward;
  const int64_t floatBytes = sizeof(float);
  int64_t batch = std::max(req.batch, 1), steps = std::max(req.expectedSteps, 1);
  MemoryEstimate m;
  m.params = saturatingMul(paramElements(fwd), 4 * floatBytes);
  int64_t inputs = 0, outputs = 0;
  for (const ir::Variable &in : fwd.inputs)
    inputs = saturatingAdd(inputs, ir::numElements(in.shape));
  for (const ir::Output &o : fwd.outputs)
    outputs = saturatingAdd(outputs, ir::numElements(fwd.node(o.node).shape));
  m.episode = episodeBytes(req, inputs, outputs);
  m.engine = estimateEpisodeBytes(fwd, bwd, batch, steps);
  m.engineWhat = "the BPTT tape, one step's values and index tables";
  return m;
}

} // namespace

EngineNetwork tool::makeGenericNetwork(const EngineRequest &request, const std::string &tool) {
  EngineNetwork out;
  auto compiled = loadNetwork(request.spec, out.exitCode);
  if (!compiled)
    return out;
  // Before the executor: it allocates the parameters, their gradients and the constants.
  MemoryEstimate estimate = genericEstimate(*compiled, request);
  if (!fitsMemory(request, estimate, tool)) {
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
  int exitCode = 1;
  auto net = loadNetwork(opt.spec, exitCode);
  if (!net)
    return exitCode;
  try {
    // The executor allocates the parameters and their gradients first; the steps and the batch
    // are known only once the inputs are read.
    int64_t elementBytes = opt.doublePrecision ? int64_t(sizeof(double)) : int64_t(sizeof(float));
    checkMemoryFits(saturatingMul(paramElements(net->forward), 2 * elementBytes),
                    "generic engine: the parameters and their gradients", opt.maxMemory);
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

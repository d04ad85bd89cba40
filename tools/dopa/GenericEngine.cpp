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

/// Elements of all the parameters of a forward graph.
int64_t paramElements(const ir::Graph &forward) {
  int64_t n = 0;
  for (const ir::Variable &p : forward.params)
    n = saturatingAdd(n, ir::numElements(p.shape));
  return n;
}

/// Elements of node `n`'s value for `batch` elements: one tensor per element when it varies
/// across the batch, else one for all.
int64_t valueElements(const ir::Node &n, int64_t batch) {
  return saturatingMul(ir::numElements(n.shape), n.batched ? batch : 1);
}

/// Entries of the executor's index tables for `g` (one int64_t each, built with the executor):
/// element-wise ops with a broadcast operand, broadcasts, reductions and slices address their
/// operands through them.
int64_t tableEntries(const ir::Graph &g) {
  int64_t n = 0;
  for (const ir::Node &node : g.nodes) {
    int64_t own = ir::numElements(node.shape);
    if (ir::isElementwise(node.op)) {
      for (int o : node.operands) {
        const ir::Shape &s = g.node(o).shape;
        if (s != node.shape && ir::numElements(s) != 1)
          n = saturatingAdd(n, own);
      }
    } else if (node.op == ir::Op::BroadcastTo) {
      n = saturatingAdd(n, own);
    } else if (node.op == ir::Op::ReduceTo) {
      n = saturatingAdd(n, ir::numElements(g.node(node.operands[0]).shape));
    } else if (node.op == ir::Op::Slice || node.op == ir::Op::SliceGrad) {
      n = saturatingAdd(n, std::min(own, ir::numElements(g.node(node.operands[0]).shape)));
    }
  }
  return n;
}

/// What the generic engine needs for an iteration, from the graphs, before its executor allocates
/// anything: the parameters, their gradients and Adam's two moments; the tape, which keeps every
/// step's inputs and the forward values the backward graph reads (store-everything BPTT); one
/// step's values of the forward and the backward graph (every op allocates its result) and the
/// index tables; and the caller's per-step buffers.
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
  // One step on the tape: its inputs, and the forward values the backward graph reads (parameters,
  // inputs and constants among them are not copies).
  int64_t tapeStep = saturatingMul(inputs, batch);
  std::vector<bool> saved(fwd.nodes.size(), false);
  for (const ir::Node &n : bwd.nodes) {
    if (n.op != ir::Op::FwdValue || n.index < 0 || size_t(n.index) >= saved.size() ||
        saved[size_t(n.index)])
      continue;
    saved[size_t(n.index)] = true;
    const ir::Node &value = fwd.node(n.index);
    if (value.op != ir::Op::Param && value.op != ir::Op::Input && value.op != ir::Op::Const)
      tapeStep = saturatingAdd(tapeStep, valueElements(value, batch));
  }
  // One step's values: every op's result, and the states (the other leaves are views).
  int64_t working = 0;
  for (const ir::Graph *g : {&fwd, &bwd})
    for (const ir::Node &n : g->nodes)
      if (!ir::isLeaf(n.op) || n.op == ir::Op::State)
        working = saturatingAdd(working, valueElements(n, batch));
  int64_t tables = saturatingAdd(tableEntries(fwd), tableEntries(bwd));
  m.engine = saturatingAdd(
      saturatingMul(saturatingAdd(saturatingMul(steps, tapeStep), working), floatBytes),
      saturatingMul(tables, int64_t(sizeof(int64_t))));
  m.engineWhat = "the BPTT tape, one step's values and index tables";
  return m;
}

} // namespace

bool tool::haveGenericEngine() { return true; }

EngineNetwork tool::makeGenericNetwork(const EngineRequest &request, const std::string &tool) {
  EngineNetwork out;
  auto compiled = loadNetwork(request.spec);
  if (!compiled) {
    out.exitCode = 1;
    return out;
  }
  // Before the executor: it allocates the parameters, their gradients and the constants.
  MemoryEstimate estimate = genericEstimate(*compiled, request);
  if (!fitsMemory(request, estimate, tool)) {
    out.exitCode = 1;
    return out;
  }
  out.neededBytes = estimate.total();
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

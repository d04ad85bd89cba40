//===- Engines.cpp - Choosing the engine a network runs on -----------------===//
//
// The generated engines look the example up in the table of networks compiled into this build
// (examples/: the spec's own size and CMake's DOPA_EXAMPLE_SIZES); the CUDA engine also needs a
// device. The generic engine is delegated to GenericEngine.cpp or NoGenericEngine.cpp.
//
//===----------------------------------------------------------------------===//
#include "Engines.h"
#include "Console.h"

#include "dopa/examples/ExampleNetworks.h"

#ifdef DOPA_HAVE_CUDA
#include "dopa/cuda/CudaExecutor.h"
#endif

#include <filesystem>

using namespace dopa;
using namespace dopa::tool;

bool tool::splitExampleName(const std::string &name, std::string &task, std::string &variant) {
  std::filesystem::path p(name);
  if (p.extension() == ".dopa")
    p.replace_extension();
  task = p.parent_path().filename().string();
  variant = p.filename().string();
  return !task.empty() && !variant.empty();
}

namespace {

StepFlops flopsOf(const GeneratedSpec &spec) {
  return {spec.forwardFlops, spec.forwardSharedFlops, spec.backwardFlops, spec.backwardSharedFlops};
}

std::vector<int64_t> rowsOf(const GeneratedSpec &spec, const NetworkInfo &info) {
  return std::vector<int64_t>(spec.inputRows, spec.inputRows + info.inputs.size());
}

/// The example at the requested size, or null after an error naming the sizes this build has.
const ExampleNetwork *findCompiled(const EngineRequest &req, const std::string &tool) {
  std::string dims = canonicalDims(req.dims);
  const ExampleNetwork *e = findExample(req.task, req.variant, dims);
  if (!e)
    printError(tool, "no generated network for " + req.task + " " + req.variant +
                         (dims.empty() ? "" : " at " + dims) +
                         " in this build (compiled: " + compiledDims(req.task, req.variant) +
                         "); use --engine generic, or add the size to cmake -DDOPA_EXAMPLE_SIZES");
  return e;
}

EngineNetwork makeGenerated(const EngineRequest &req, const std::string &tool) {
  EngineNetwork out;
  const ExampleNetwork *e = findCompiled(req, tool);
  if (!e) {
    out.exitCode = 2;
    return out;
  }
  const GeneratedSpec &spec = e->spec();
  auto g = std::make_unique<GeneratedNetwork>(spec);
  g->executor().setMemoryBudget(req.memoryBudget);
  g->executor().setCheckpointEvery(req.bpttSegment);
  g->executor().setExpectedSteps(req.expectedSteps);
  out.inputRows = rowsOf(spec, g->info());
  out.flops = flopsOf(spec);
  out.generated = g.get();
  out.net = std::move(g);
  return out;
}

EngineNetwork makeCuda(const EngineRequest &req, const std::string &tool) {
  EngineNetwork out;
  out.exitCode = 2;
#ifdef DOPA_HAVE_CUDA
  const ExampleNetwork *e = findCompiled(req, tool);
  if (!e)
    return out;
  if (!e->cuda) {
    printError(tool, "the CUDA engine runs the examples at their spec's own size; " + req.task +
                         " " + req.variant + " at " + canonicalDims(req.dims) +
                         " has only a C++ build");
    return out;
  }
  if (!cudaDeviceAvailable()) {
    printError(tool, "--engine cuda: no usable CUDA device on this machine");
    return out;
  }
  auto c = std::make_unique<CudaNetwork>(e->cuda());
  c->executor().setCheckpointEvery(req.bpttSegment);
  out.inputRows = rowsOf(e->spec(), c->info());
  out.flops = flopsOf(e->spec());
  out.net = std::move(c);
  out.exitCode = 0;
#else
  printError(tool, "--engine cuda: this dopa was built without CUDA (no nvcc when it was "
                   "configured, or -DDOPA_CUDA=OFF)");
#endif
  return out;
}

} // namespace

EngineNetwork tool::makeEngineNetwork(const EngineRequest &req, const std::string &tool) {
  if (req.engine == "generated")
    return makeGenerated(req, tool);
  if (req.engine == "cuda")
    return makeCuda(req, tool);
  return makeGenericNetwork(req.spec, tool);
}

//===- Engines.cpp - Choosing the engine a network runs on -----------------===//
//
// The generated engines look the example up in the table of networks compiled into this build
// (examples/: the spec's own size and CMake's DOPA_EXAMPLE_SIZES); the CUDA engine also needs a
// device. The generic engine is delegated to GenericEngine.cpp or NoGenericEngine.cpp. The memory
// check is here: the generated engine's estimate (its checkpoint plan) and the message; so is the
// CUDA launch chosen for several runs sharing one GPU (dopa train --seeds).
//
//===----------------------------------------------------------------------===//
#include "Engines.h"
#include "Console.h"

#include "dopa/examples/ExampleNetworks.h"
#include "dopa/runtime/Memory.h"
#include "dopa/runtime/SafeTensors.h"

#ifdef DOPA_HAVE_CUDA
#include "dopa/cuda/CudaExecutor.h"
#endif

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <omp.h>

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

int64_t tool::MemoryEstimate::total() const {
  return saturatingAdd(saturatingAdd(params, engine), episode);
}

int64_t tool::episodeBytes(const EngineRequest &req, int64_t inputNumel, int64_t outputNumel) {
  int64_t episodeSteps = saturatingMul(std::max(req.batch, 1), std::max(req.expectedSteps, 1));
  int64_t perStep = saturatingAdd(inputNumel, saturatingMul(2, outputNumel));
  return saturatingMul(saturatingMul(episodeSteps, perStep), int64_t(sizeof(float)));
}

bool tool::fitsMemory(const EngineRequest &req, const MemoryEstimate &estimate,
                      const std::string &tool) {
  auto bytes = [](int64_t b) {
    return (b == kUnboundedBytes ? "more than " : "") + formatBytes(b);
  };
  std::string what = req.engine + " engine, B=" + std::to_string(req.batch) +
                     ", T=" + std::to_string(req.expectedSteps);
  for (const std::string &dim : req.dims.empty() ? req.spec.dimOverrides : req.dims) {
    what += ", ";
    what += dim;
  }
  int threads = omp_get_max_threads(); // each has buffers of its own: part of the estimate
  what += ", " + std::to_string(threads) + (threads == 1 ? " thread" : " threads");
  what += ": parameters and optimizer state " + bytes(estimate.params) + ", " +
          estimate.engineWhat + " " + bytes(estimate.engine) +
          ", the episode's inputs and outputs " + bytes(estimate.episode);
  try {
    checkMemoryFits(estimate.total(), what, req.maxMemory);
    return true;
  } catch (const DataError &e) {
    printError(tool, e.what());
    return false;
  }
}

const ExampleNetwork *tool::findCompiledExample(const std::string &task, const std::string &variant,
                                                const std::vector<std::string> &dimOverrides,
                                                const std::string &tool) {
  std::string dims = canonicalDims(dimOverrides);
  const ExampleNetwork *e = findExample(task, variant, dims);
  if (!e && compiledDims(task, variant).empty()) {
    std::string variants;
    for (const ExampleNetwork &n : exampleNetworks())
      if (n.task == task && !*n.dims)
        variants += (variants.empty() ? "" : ", ") + std::string(n.variant);
    printError(tool, "no example network '" + variant + "' for " + task + " in this build (" +
                         (variants.empty() ? "it has none" : "it has " + variants) + "); " +
                         (tool == "dopa train" ? "pass --spec FILE for your own"
                                               : "give the path of your own spec file instead"));
  } else if (!e)
    printError(tool, "no generated network for " + task + " " + variant +
                         (dims.empty() ? "" : " at " + dims) +
                         " in this build (compiled: " + compiledDims(task, variant) +
                         "); use --engine generic, or add the size to cmake -DDOPA_EXAMPLE_SIZES");
  return e;
}

namespace {

/// What the generated C++ engine needs for an iteration, before it allocates: the parameters,
/// their gradients and Adam's two moments; the executor's checkpoint plan (planCheckpoints: the
/// states, every step's inputs, the BPTT checkpoints and every thread's replay buffers); and the
/// caller's per-step buffers.
/// The generated executor's order: --stage-order, else DOPA_STAGE_ORDER's, else auto.
static StageOrder stageOrderOf(const EngineRequest &req) {
  return req.stageOrder.empty() ? defaultStageOrder()
                                : parseStageOrder(req.stageOrder, "--stage-order");
}

MemoryEstimate generatedEstimate(const GeneratedSpec &spec, const EngineRequest &req) {
  NetworkInfo info = spec.info();
  BlockLayout layout = layoutOf(spec, info);
  const int64_t floatBytes = sizeof(float);
  int64_t batch = std::max(req.batch, 1), steps = std::max(req.expectedSteps, 1);
  MemoryEstimate m;
  m.params = saturatingMul(saturatingMul(4, layout.paramNumel), floatBytes);
  m.episode = episodeBytes(req, layout.inputNumel, layout.outputNumel);
  m.engineWhat = "states, inputs and BPTT checkpoints";
  // What every plan holds, the states (current and next) and every step's inputs: a lower bound
  // that refuses sizes the planner's int64_t arithmetic could not even add up.
  m.engine = saturatingAdd(
      saturatingMul(saturatingMul(2, batch), saturatingMul(layout.stateNumel, floatBytes)),
      saturatingMul(saturatingMul(steps, batch), saturatingMul(layout.inputNumel, floatBytes)));
  // The plan itself (it tries every interval up to `steps`), unless the lower bound is refused
  // already, and where its largest products stay far from overflowing.
  if (m.total() > (req.maxMemory > 0 ? req.maxMemory : availableMemoryBytes()))
    return m;
  int threads = omp_get_max_threads();
  long double perElementStep = (long double)layout.stateNumel + (long double)layout.inputNumel +
                               (long double)layout.savedNumel + (long double)layout.recordNumel +
                               (long double)layout.replayRecordedNumel +
                               2.0L * (long double)layout.readoutNumel + 16.0L;
  long double perThread = (long double)layout.scratchNumel + (long double)layout.paramNumel +
                          (long double)layout.outputNumel + (long double)layout.productXNumel +
                          (long double)layout.productYNumel + 16.0L;
  // (Stage-major, the replay buffers are per element: the batch counts as the threads.)
  long double largest = 4.0L * (long double)floatBytes *
                        (long double)std::max<int64_t>({threads, batch, 1}) *
                        ((long double)steps * (long double)batch * perElementStep + perThread);
  if (largest < 4.0e18L) {
    PlanInputs in =
        planInputs(layout, floatBytes, int(batch), int(steps), threads, req.memoryBudget,
                   req.bpttSegment, runsStageMajor(spec, spec.info(), stageOrderOf(req)));
    m.engine = std::max(m.engine, planCheckpoints(in).totalBytes);
  }
  return m;
}

StepFlops flopsOf(const GeneratedSpec &spec) {
  return {spec.forwardFlops, spec.forwardSharedFlops, spec.backwardFlops, spec.backwardSharedFlops};
}

std::vector<int64_t> rowsOf(const GeneratedSpec &spec, const NetworkInfo &info) {
  return std::vector<int64_t>(spec.inputRows, spec.inputRows + info.inputs.size());
}

/// The generated network `req` asks for: the user's spec compiled on demand, the example compiled
/// into this build, or the example's spec compiled on demand at a size the build does not have;
/// null after an error (exitCode set).
const GeneratedSpec *onDemandSpec(const EngineRequest &req, const std::string &tool,
                                  int &exitCode) {
  if (req.onDemand)
    return compileOnDemand(req.spec, tool, exitCode);
  // The build's examples store traces in float; bf16 traces compile the example's spec on demand.
  if (const ExampleNetwork *e = findExample(req.task, req.variant, canonicalDims(req.dims));
      e && !req.spec.traceBf16)
    return &e->spec();
  std::error_code ec;
  if (onDemandAvailable() && !req.spec.path.empty() &&
      std::filesystem::is_regular_file(req.spec.path, ec)) {
    SpecOptions spec = req.spec;
    spec.dimOverrides = req.dims;
    return compileOnDemand(spec, tool, exitCode);
  }
  exitCode = 2;
  if (req.spec.traceBf16) {
    printError(tool,
               "--trace-precision bf16 compiles the network on demand (the build's examples "
               "store their traces in float), and " +
                   std::string(!onDemandAvailable() ? "this build has no compiler (runtime-only)"
                               : req.spec.path.empty()
                                   ? "the example's spec was not found"
                                   : "its spec " + req.spec.path + " was not found"));
    return nullptr;
  }
  findCompiledExample(req.task, req.variant, req.dims, tool); // says what the build has
  return nullptr;
}

EngineNetwork makeGenerated(const EngineRequest &req, const std::string &tool) {
  EngineNetwork out;
  const GeneratedSpec *found = onDemandSpec(req, tool, out.exitCode);
  if (!found)
    return out;
  const GeneratedSpec &spec = *found;
  MemoryEstimate estimate = generatedEstimate(spec, req);
  if (!fitsMemory(req, estimate, tool)) {
    out.exitCode = 1;
    return out;
  }
  auto g = std::make_unique<GeneratedNetwork>(spec);
  g->executor().setMemoryBudget(req.memoryBudget);
  g->executor().setCheckpointEvery(req.bpttSegment);
  g->executor().setExpectedSteps(req.expectedSteps);
  g->executor().setStageOrder(stageOrderOf(req));
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
  const ExampleNetwork *e = findCompiledExample(req.task, req.variant, req.dims, tool);
  if (!e)
    return out;
  if (!e->cuda) {
    printError(tool, "the CUDA engine runs the examples at their spec's own size; " + req.task +
                         " " + req.variant + " at " + canonicalDims(req.dims) +
                         " has only a C++ build");
    return out;
  }
  if (std::string problem = cudaDeviceProblem(); !problem.empty()) {
    printError(tool, "--engine cuda: no usable CUDA device on this machine (" + problem + ")");
    return out;
  }
  try {
    int device = cudaUseDeviceFor(req.localRank);
    std::string rank = req.localRank ? " (local rank " + std::to_string(req.localRank) + ")" : "";
    printStderr(tool + ": CUDA engine on " + cudaDeviceDescription() + rank + "\n");
    // More ranks than GPUs here, unless the launcher gave each rank a GPU of its own (one device
    // in CUDA_VISIBLE_DEVICES, as Slurm's --gpus-per-task=1 does).
    const char *visible = std::getenv("CUDA_VISIBLE_DEVICES");
    bool boundPerRank = visible && *visible && !std::strchr(visible, ',');
    if (req.localRank >= cudaDeviceCount() && !boundPerRank)
      printStderr(tool + ": warning: rank " + std::to_string(req.localRank) +
                  " of this machine shares GPU " + std::to_string(device) +
                  " with another rank: without MPS (nvidia-cuda-mps-control -d) CUDA "
                  "time-slices the processes, 7x slower per iteration on an H200 (docs/mpi.md)\n");
  } catch (const std::exception &ex) {
    printError(tool, std::string("--engine cuda: ") + ex.what());
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

void tool::chooseSharedGpuLaunch(int runs, const std::string &tool) {
#ifdef DOPA_HAVE_CUDA
  for (const char *v : {"DOPA_CUDA_BARRIER", "DOPA_CUDA_SPLITS", "DOPA_CUDA_THREADS"})
    if (const char *set = std::getenv(v); set && *set)
      return;
  if (runs < 4 || !cudaDeviceProblem().empty())
    return;
  setenv("DOPA_CUDA_BARRIER", "block", 1); // read at the first launch (LaunchPolicy)
  printStderr(
      tool + ": " + std::to_string(runs) +
      " runs at once on the GPU: one block per batch element (DOPA_CUDA_BARRIER=block; "
      "set DOPA_CUDA_BARRIER, DOPA_CUDA_SPLITS or DOPA_CUDA_THREADS to choose otherwise)\n");
#else
  (void)runs;
  (void)tool;
#endif
}

EngineNetwork tool::makeEngineNetwork(const EngineRequest &req, const std::string &tool) {
  if (req.engine == "generated")
    return makeGenerated(req, tool);
  if (req.engine == "cuda")
    return makeCuda(req, tool);
  return makeGenericNetwork(req, tool);
}

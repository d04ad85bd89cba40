//===- Engines.h - The engines the dopa tool runs networks on --------------===//
//
// Three engines run a network behind the runtime's Network interface: `generated` (the example's
// C++ compiled at build time, at the sizes CMake compiled; any other spec or size compiled on
// demand into the cache, OnDemand.cpp), `cuda` (the same example's generated
// CUDA, in builds with nvcc) and `generic` (the compiler's IR interpreter: any spec, any -D; full
// build only). makeEngineNetwork() picks one for train and bench; the generic engine's functions
// are implemented by GenericEngine.cpp in the full build and by NoGenericEngine.cpp in the
// runtime-only build, which explains what is missing. Before an engine allocates anything, the
// memory a training iteration needs (MemoryEstimate) is compared with the memory available, and a
// run that cannot fit is refused (fitsMemory). Nothing in this header needs the compiler.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "Commands.h"

#include "dopa/runtime/Generated.h"
#include "dopa/runtime/Network.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace dopa {
struct ExampleNetwork;
}

namespace dopa::tool {

/// Floating-point operations of one step, per batch element and once for the batch.
struct StepFlops {
  int64_t forward = 0, forwardShared = 0, backward = 0, backwardShared = 0;
  double perIteration(int batch, int steps) const {
    return double(steps) * double((forward + backward) * batch + forwardShared + backwardShared);
  }
};

/// What to run: the engine, the example (task, variant, -D) and the generated engines' BPTT
/// controls.
struct EngineRequest {
  std::string engine = "generated"; // generated | cuda | generic
  std::string task, variant;        // the example, e.g. cue_reward, modul
  std::vector<std::string> dims;    // -D: a compiled size (generated, cuda) or any (generic)
  SpecOptions spec;                 // generic: the spec to interpret; generated: the spec to
                                    // compile on demand when it is not compiled into this build
  bool onDemand = false;            // generated: compile `spec` (a spec of the user's own)
  long long memoryBudget = 0;       // generated: BPTT checkpoint budget (0: default)
  int bpttSegment = 0;              // generated, cuda: forced checkpoint interval (0: planned)
  std::string stageOrder;           // generated: auto | element | stage (empty: DOPA_STAGE_ORDER)
  int expectedSteps = 0;            // generated: episode length to plan for; all: memory check
  int batch = 1;                    // episodes per iteration (memory check)
  long long maxMemory = 0;          // --max-memory: the memory check's limit (0: available)
  int localRank = 0;                // cuda: this rank's index on its machine (picks its GPU)
};

/// What one training iteration of request.batch episodes of request.expectedSteps steps needs, in
/// bytes (saturating: kUnboundedBytes when a product overflows), by part.
struct MemoryEstimate {
  int64_t params = 0;     // parameters, gradients and the optimizer's two moments
  int64_t engine = 0;     // what the engine holds over an episode
  std::string engineWhat; // what that is, for the message ("states and BPTT checkpoints")
  int64_t episode = 0;    // the caller's per-step inputs, outputs and output gradients
  int64_t total() const;
};

/// A network on its engine, with what reports need.
struct EngineNetwork {
  std::unique_ptr<Network> net;
  std::vector<int64_t> inputRows;        // per input: rows of the table it indexes, else 0
  StepFlops flops;                       // of one step
  GeneratedNetwork *generated = nullptr; // the generated C++ engine's network, for its plan
  int exitCode = 0; // when net is null: 1 (errors in the spec, too little memory), 2 (engine or
                    // size unavailable)
};

/// Before `runs` CUDA runs of this process start side by side (dopa train --seeds): with 4 or
/// more, launch one block per batch element instead of the default (a cluster of 4 on Hopper, the
/// cooperative grid before it). Each run is slower, but together they fill the GPU better (ten
/// seeds of cue-reward modul on an H200: 154 against 114 iterations/s in all; docs/mpi.md).
/// Unless DOPA_CUDA_BARRIER, _SPLITS or _THREADS is set; says so on stderr; nothing without CUDA
/// or a device. Call it before any thread starts.
void chooseSharedGpuLaunch(int runs, const std::string &tool);

/// The network `request` asks for; on failure `net` is null after a message prefixed by `tool`.
EngineNetwork makeEngineNetwork(const EngineRequest &request, const std::string &tool);

/// The caller's buffers for an episode: request.batch × request.expectedSteps × (the inputs, the
/// outputs and their gradients) floats, from the elements of one step of one batch element.
int64_t episodeBytes(const EngineRequest &request, int64_t inputNumel, int64_t outputNumel);

/// Whether `estimate` fits the memory available (or request.maxMemory); false after a message
/// prefixed by `tool` that names the engine, the sizes and every part (checkMemoryFits).
bool fitsMemory(const EngineRequest &request, const MemoryEstimate &estimate,
                const std::string &tool);

/// The example compiled into this build at the -D sizes, or null after an error prefixed by `tool`
/// that names the sizes this build has.
const ExampleNetwork *findCompiledExample(const std::string &task, const std::string &variant,
                                          const std::vector<std::string> &dimOverrides,
                                          const std::string &tool);

/// Task and variant from "cue_reward/modul" or ".../cue_reward/modul.dopa"; false if neither.
bool splitExampleName(const std::string &name, std::string &task, std::string &variant);

// The generic engine: GenericEngine.cpp (full build) or NoGenericEngine.cpp (runtime-only build).

/// The generic engine's network for request.spec, its gather rows and FLOPs; null `net` after
/// diagnostics or when the run would not fit in memory (exit code 1) or, in the runtime-only
/// build, after saying why (exit code 2).
EngineNetwork makeGenericNetwork(const EngineRequest &request, const std::string &tool);
/// `dopa grad` on the generic engine (float or double).
int runGenericGrad(const GradOptions &options);

// On-demand compilation: OnDemand.cpp (full build) or NoGenericEngine.cpp (runtime-only build).

/// Whether this build can compile specs on demand (it has the compiler).
bool onDemandAvailable();
/// `spec` at its -D compiled into the cache (or loaded from it), with a note saying which and how
/// long it took; null after the spec's diagnostics or an error prefixed by `tool` (exitCode 1,
/// or 2 in the runtime-only build).
const GeneratedSpec *compileOnDemand(const SpecOptions &spec, const std::string &tool,
                                     int &exitCode);

} // namespace dopa::tool

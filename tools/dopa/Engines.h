//===- Engines.h - The engines the dopa tool runs networks on --------------===//
//
// Three engines run a network behind the runtime's Network interface: `generated` (the example's
// C++ compiled at build time, at the sizes CMake compiled), `cuda` (the same example's generated
// CUDA, in builds with nvcc) and `generic` (the compiler's IR interpreter: any spec, any -D; full
// build only). makeEngineNetwork() picks one for train and bench; the generic engine's functions
// are implemented by GenericEngine.cpp in the full build and by NoGenericEngine.cpp in the
// runtime-only build, which explains what is missing. Nothing in this header needs the compiler.
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
  SpecOptions spec;                 // generic: the spec to interpret
  long long memoryBudget = 0;       // generated: BPTT checkpoint budget (0: default)
  int bpttSegment = 0;              // generated, cuda: forced checkpoint interval (0: planned)
  int expectedSteps = 0;            // generated: episode length to plan for
};

/// A network on its engine, with what reports need.
struct EngineNetwork {
  std::unique_ptr<Network> net;
  std::vector<int64_t> inputRows;        // per input: rows of the table it indexes, else 0
  StepFlops flops;                       // of one step
  GeneratedNetwork *generated = nullptr; // the generated C++ engine's network, for its plan
  int exitCode = 0; // when net is null: 1 (errors in the spec), 2 (engine or size unavailable)
};

/// The network `request` asks for; on failure `net` is null after a message prefixed by `tool`.
EngineNetwork makeEngineNetwork(const EngineRequest &request, const std::string &tool);

/// Task and variant from "cue_reward/modul" or ".../cue_reward/modul.dopa"; false if neither.
bool splitExampleName(const std::string &name, std::string &task, std::string &variant);

// The generic engine: GenericEngine.cpp (full build) or NoGenericEngine.cpp (runtime-only build).

/// Whether this build has the generic engine (and the compiler behind it).
bool haveGenericEngine();
/// The generic engine's network for a spec, its gather rows and FLOPs; null `net` after
/// diagnostics (exit code 1) or, in the runtime-only build, after saying why (exit code 2).
EngineNetwork makeGenericNetwork(const SpecOptions &spec, const std::string &tool);
/// `dopa grad` on the generic engine (float or double).
int runGenericGrad(const GradOptions &options);

} // namespace dopa::tool

//===- Commands.h - Subcommands of the dopa tool ----------------------------===//
//
// Each subcommand of `dopa` is one function; dopa.cpp parses options and dispatches.
// Exit codes: 0 success, 1 errors in the spec or the data, 2 usage errors.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/compiler/Passes.h"
#include "dopa/dsl/Frontend.h"
#include "dopa/train/Trainer.h"

#include <optional>
#include <string>
#include <vector>

namespace dopa::tool {

struct SpecOptions {
  std::string path;
  std::vector<std::string> includeDirs;
  std::vector<std::string> dimOverrides; // "H=4"
  std::string network;                   // empty: the only network in the spec
};

/// Load, check and compile one network of a spec; diagnostics go to stderr. nullopt on errors.
std::optional<CompiledNetwork> loadNetwork(const SpecOptions &options);

struct GradOptions {
  SpecOptions spec;
  std::string paramsPath, inputsPath, outputGradsPath, outPath, saveParamsPath;
  std::optional<uint64_t> initSeed;
  bool doublePrecision = false;
};

int runGrad(const GradOptions &options);

struct TrainOptions {
  SpecOptions spec;
  TrainConfig config;
  std::string engine = "generated";
  std::string task, variant;     // the example the generated engine runs
  std::vector<std::string> dims; // -D: the generated engine looks up the example at these dims
  long long memoryBudget = 0;    // generated engine: BPTT checkpoint budget (0: default)
  int bpttSegment = 0;           // generated engine: forced checkpoint interval (0: planned)
  bool resume = false;
};

int runTrain(const TrainOptions &options);

struct BenchOptions {
  std::string example; // "cue_reward/modul"
  std::vector<std::string> dims;
  std::string engine = "generated";
  int batch = 30, steps = 120, iters = 5, warmup = 1;
  uint64_t seed = 0;
  long long memoryBudget = 0;
  int bpttSegment = 0;
  std::string jsonPath;
};

/// Time training iterations of one example network (dopa bench).
int runBench(const BenchOptions &options);

/// What the machine can do at most with the current threads (dopa bench --probe).
struct MachineCeiling {
  int threads = 1;
  double triadBytesPerSecond = 0;
  double fmaFlopsPerSecond = 0;
};
MachineCeiling probeMachine();
int runProbe(const std::string &jsonPath);

} // namespace dopa::tool

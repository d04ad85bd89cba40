//===- Commands.h - Subcommands of the dopa tool ----------------------------===//
//
// Each subcommand of `dopa` is one function; dopa.cpp parses options and dispatches. Nothing here
// needs the compiler: the generic engine is reached through Engines.h, so the same sources build
// the full tool and the runtime-only one. Exit codes: 0 success, 1 errors in the spec or the data,
// 2 usage errors.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/train/Trainer.h"

#include <optional>
#include <string>
#include <vector>

namespace dopa {
class Communicator;
}

namespace dopa::tool {

struct SpecOptions {
  std::string path;
  std::vector<std::string> includeDirs;
  std::vector<std::string> dimOverrides; // "H=4"
  std::string network;                   // empty: the only network in the spec
  bool traceBf16 = false; // generated engine: compile with --trace-precision=bf16 (on demand)
};

/// "float" | "bf16" (the --trace-precision values): whether traces are stored in bfloat16.
inline bool isBf16Precision(const std::string &precision) { return precision == "bf16"; }

/// The usage error of bf16 traces on an engine other than the generated one, or "".
inline std::string tracePrecisionProblem(bool traceBf16, const std::string &engine) {
  return traceBf16 && engine != "generated" ? "--trace-precision bf16 is for the generated engine"
                                            : "";
}

/// What run descriptions append for bf16 traces: " (bf16 traces)", or "".
inline const char *tracePrecisionSuffix(bool traceBf16) {
  return traceBf16 ? " (bf16 traces)" : "";
}

/// The spec of an example network, <examples>/<task>/<variant>.dopa, found relative to the
/// installed prefix or the source tree; throws when the examples cannot be found.
std::string exampleSpecPath(const std::string &task, const std::string &variant);
/// The folder of a task's example specs (their include path); throws like exampleSpecPath.
std::string exampleDir(const std::string &task);

struct GradOptions {
  SpecOptions spec;
  std::string paramsPath, inputsPath, outputGradsPath, outPath, saveParamsPath;
  std::optional<uint64_t> initSeed;
  bool doublePrecision = false;
  std::string engine = "generic"; // generic | generated
  long long maxMemory = 0;        // --max-memory: bytes the run may use (0: what is available)
};

int runGrad(const GradOptions &options);

struct TrainOptions {
  SpecOptions spec;
  TrainConfig config;
  std::string engine = "generated";
  std::string task, variant = "modul"; // the example the generated engine runs: examples/<task>/
  std::vector<std::string> dims; // -D: the generated engine looks up the example at these dims
  long long memoryBudget = 0;    // generated engine: BPTT checkpoint budget (0: default)
  long long maxMemory = 0;       // --max-memory: bytes the run may use (0: what is available)
  int bpttSegment = 0;           // generated engine: forced checkpoint interval (0: planned)
  std::string stageOrder;        // generated engine: auto | element | stage (empty: the default)
  bool resume = false;
  bool specGiven = false; // --spec: the user's spec (the generated engine compiles it on demand)
  Communicator *comm = nullptr; // the ranks of a data-parallel run (mpirun); null: one process
  std::vector<std::string> commandLine; // recorded in config.json
  // --seeds: one run per seed in this process, in --out/seed-<seed> (empty: one run, --seed);
  // --runs-at-once of them at a time (0: as many as threads, every seed with the cuda engine).
  std::vector<uint64_t> seeds;
  int runsAtOnce = 0;
};

/// Train on the task `info` makes from `taskOptions` (checked by TrainCommand.cpp); the task is
/// made at the run's batch only once the run is known to fit in memory.
int runTrain(const TrainOptions &options, const TaskInfo &info, const TaskOptions &taskOptions);

struct BenchOptions {
  std::string example; // "cue_reward/modul"
  std::vector<std::string> dims;
  std::string engine = "generated";
  int batch = 30, steps = 120, iters = 5, warmup = 1;
  uint64_t seed = 0;
  long long memoryBudget = 0;
  long long maxMemory = 0; // --max-memory: bytes the run may use (0: what is available)
  int bpttSegment = 0;
  std::string stageOrder; // generated engine: auto | element | stage (empty: the default)
  std::string jsonPath;
  bool traceBf16 = false; // generated engine: the network compiled with bf16 traces, on demand
  std::string network;    // a spec file's network, when it has several (--network)
};

/// `dopa cache list|clear|dir`: the networks compiled on demand (OnDemand.cpp; the runtime-only
/// build says it has none).
int runCache(const std::string &action);

/// Write a checkpoint's parameters under their spec names (dopa export); `source` is a checkpoint
/// or a run folder.
int runExport(const std::string &source, const std::string &outPath);

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

//===- dopa.cpp - The dopa tool: train, grad, bench --------------------------===//
//
// Option parsing (CLI11 subcommands) and dispatch only; each subcommand lives in its own file.
// Exit codes: 0 success, 1 errors in the spec or the data, 2 usage errors.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"
#include "Console.h"

#include <CLI/CLI.hpp>

#include <omp.h>

#include <cmath>
#include <cstdint>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

using namespace dopa;

namespace {

/// `dopa grad` as parsed, before the checks.
struct GradArgs {
  std::string spec;
  std::vector<std::string> includeDirs, dims;
  std::string network, paramsPath, saveParams, inputsPath, outputGradsPath, outPath;
  uint64_t initSeed = 0;
  CLI::Option *initSeedOption = nullptr; // whether --init-seed was given
  bool f64 = false;
  std::string engine = "generic";
  long long maxMemory = 0;
  int threads = 0;
};

/// `dopa train` as parsed, before the checks.
struct TrainArgs {
  std::string task, variant = "modul", spec;
  std::vector<std::string> dims;
  int64_t iters = 1000;
  uint64_t seed = 0;
  int batch = 30, eplen = 120, cues = 4, cuesPerTrial = 2;
  double lr = 1e-4, clip = 2.0;
  int64_t burnIn = 101;
  std::string baseline = "first-element", engine = "generated";
  long long memoryBudget = 0;
  long long maxMemory = 0;
  int bpttSegment = 0;
  std::string outDir;
  bool resume = false;
  int64_t checkpointEvery = 100;
  int threads = 0;
};

/// `dopa bench` as parsed, before the checks.
struct BenchArgs {
  std::string network;
  std::vector<std::string> dims;
  std::string engine = "generated";
  int batch = 30, steps = 120, iters = 5, warmup = 1;
  uint64_t seed = 0;
  long long memoryBudget = 0;
  long long maxMemory = 0;
  int bpttSegment = 0;
  std::string json;
  bool probe = false;
  int threads = 0;
};

int usage(const std::string &msg) {
  tool::printError("dopa", msg + " (see dopa <command> --help)");
  return 2;
}

/// --threads: 0 keeps OpenMP's default (all cores); false for a negative count.
bool setThreads(int n) {
  if (n < 0)
    return false;
  if (n > 0)
    omp_set_num_threads(n);
  return true;
}

const char *const threadsMessage = "--threads must be positive (0: all cores)";

/// "--lr must be a positive finite number (got nan)" when `v` is not one; else "".
std::string positiveFinite(const char *flag, double v) {
  if (std::isfinite(v) && v > 0)
    return "";
  return std::string(flag) + " must be a positive finite number (got " + tool::format("%g", v) +
         ")";
}

/// "--burn-in must not be negative (got -3)" when `v` is negative; else "".
std::string notNegative(const char *flag, long long v) {
  if (v >= 0)
    return "";
  return std::string(flag) + " must not be negative (got " + std::to_string(v) + ")";
}

/// The first numeric option of `dopa train` out of its range, as a message; "" when all are fine.
std::string trainNumbersProblem(const TrainArgs &a) {
  for (const std::string &problem :
       {positiveFinite("--lr", a.lr), positiveFinite("--clip", a.clip),
        notNegative("--burn-in", a.burnIn), notNegative("--memory-budget", a.memoryBudget),
        notNegative("--bptt-segment", a.bpttSegment),
        notNegative("--checkpoint-every", a.checkpointEvery)})
    if (!problem.empty())
      return problem;
  return "";
}

/// The engines that train a network (train and bench).
bool isTrainingEngine(const std::string &engine) {
  return engine == "generated" || engine == "generic" || engine == "cuda";
}

/// One value per occurrence: `-D H=4 -D W=2` (and `-DH=4`), never the arguments after it.
CLI::Option *addRepeated(CLI::App *cmd, const std::string &name, std::vector<std::string> &values,
                         const std::string &help, const std::string &valueName) {
  return cmd->add_option(name, values, help)->type_name(valueName)->allow_extra_args(false);
}

CLI::App *addGradOptions(CLI::App &app, GradArgs &a) {
  CLI::App *cmd = app.add_subcommand("grad", "One forward pass over T steps and one BPTT pass: "
                                             "write the gradients of every parameter");
  cmd->add_option("spec", a.spec, "<spec.dopa>");
  addRepeated(cmd, "-I", a.includeDirs, "Add <dir> to the include path", "DIR");
  addRepeated(cmd, "-D", a.dims, "Override a network dimension: -D H=4", "NAME=VALUE");
  cmd->add_option("--network", a.network, "The network to use (when the spec has several)");
  cmd->add_option("--params", a.paramsPath, "Parameters (safetensors, the spec's param names)")
      ->type_name("FILE");
  a.initSeedOption = cmd->add_option("--init-seed", a.initSeed,
                                     "Initialize the parameters from their initializers")
                         ->type_name("SEED");
  cmd->add_option("--save-params", a.saveParams, "Also write the parameters used")
      ->type_name("FILE");
  cmd->add_option("--inputs", a.inputsPath, "Inputs: one [T, B, ...] tensor per spec input")
      ->type_name("FILE");
  cmd->add_option("--output-grads", a.outputGradsPath,
                  "dLoss/d outputs: one [T, B, ...] tensor per output (missing outputs get zeros)")
      ->type_name("FILE");
  cmd->add_option("--out", a.outPath, "Where to write the gradients and the outputs")
      ->type_name("FILE");
  cmd->add_flag("--f64", a.f64, "Compute in double precision (default: float32)");
  cmd->add_option("--engine", a.engine,
                  "generic (the IR interpreter; the default) | generated (the network's C++, "
                  "compiled at build time)");
  cmd->add_option("--max-memory", a.maxMemory,
                  "Bytes the run may use (default 0: the memory available); input files that "
                  "need more are refused before they are read")
      ->type_name("BYTES");
  cmd->add_option("--threads", a.threads, "Threads for the batch (default: all cores)");
  return cmd;
}

CLI::App *addTrainOptions(CLI::App &app, TrainArgs &a) {
  CLI::App *cmd =
      app.add_subcommand("train", "Meta-train a network on a task (cue-reward) with A2C");
  cmd->add_option("task", a.task, "<task: cue-reward>");
  cmd->add_option("--variant", a.variant, "rnn | plastic | modplast | modul (examples/cue_reward)");
  cmd->add_option("--spec", a.spec, "A spec to train instead of the variant's example")
      ->type_name("FILE");
  addRepeated(cmd, "-D", a.dims, "Override a network dimension: -D H=50", "NAME=VALUE");
  cmd->add_option("--iters", a.iters, "Training iterations (batches of episodes)");
  cmd->add_option("--seed", a.seed, "Random seed (parameters, tasks, actions)");
  cmd->add_option("--batch", a.batch, "Episodes per iteration (--bs)");
  cmd->add_option("--eplen", a.eplen, "Steps per episode");
  cmd->add_option("--cues", a.cues,
                  "Cues per episode (--ni); with 2, both show in every trial and 'always respond' "
                  "is optimal: a sanity check");
  cmd->add_option("--cues-per-trial", a.cuesPerTrial,
                  "Cues shown per trial: 2 (the reference) or 1 (a simpler association, used by "
                  "the demo)");
  cmd->add_option("--lr", a.lr, "Adam learning rate");
  cmd->add_option("--clip", a.clip, "Global gradient-norm clip (--gc)");
  cmd->add_option("--burn-in", a.burnIn, "Iterations without an optimizer step (reference: 101)");
  cmd->add_option("--baseline", a.baseline,
                  "A2C baseline: first-element (the reference code's vs[t][0]) or per-element "
                  "(each episode's own value)");
  cmd->add_option("--engine", a.engine,
                  "generated (the example's C++, compiled at build time; -D picks a compiled "
                  "size) | generic (the IR interpreter; needed for --spec and -D) | cuda (the "
                  "example's CUDA kernels, compiled at build time)");
  cmd->add_option("--memory-budget", a.memoryBudget,
                  "Generated engine: bytes the BPTT checkpoints may use (default 64 MiB)");
  cmd->add_option("--max-memory", a.maxMemory,
                  "Bytes the run may use (default 0: the memory available); a run estimated to "
                  "need more is refused before it allocates")
      ->type_name("BYTES");
  cmd->add_option("--bptt-segment", a.bpttSegment,
                  "Generated engine: keep states every <k> steps and recompute in between "
                  "(default: planned from --memory-budget)");
  cmd->add_option("--out", a.outDir, "Output folder: checkpoint.st, log.csv, learning_curve.png")
      ->type_name("DIR");
  cmd->add_flag("--resume", a.resume, "Continue the checkpoint in --out");
  cmd->add_option("--checkpoint-every", a.checkpointEvery, "Iterations between checkpoints");
  cmd->add_option("--threads", a.threads, "Threads for the batch (default: all cores)");
  return cmd;
}

CLI::App *addBenchOptions(CLI::App &app, BenchArgs &a) {
  CLI::App *cmd = app.add_subcommand(
      "bench", "Time training iterations of an example network (one engine, one size; "
               "bench/sweep.py runs the sweeps), or probe the machine");
  cmd->add_option("network", a.network, "<task/variant, e.g. cue_reward/modul>");
  addRepeated(cmd, "-D", a.dims,
              "Dimension overrides: -D H=100 (generated: a size this build compiled, see "
              "DOPA_EXAMPLE_SIZES)",
              "NAME=VALUE");
  cmd->add_option("--engine", a.engine, "generated | generic | cuda");
  cmd->add_option("--batch", a.batch, "Batch elements");
  cmd->add_option("--steps", a.steps, "Steps per episode");
  cmd->add_option("--iters", a.iters, "Measured iterations");
  cmd->add_option("--warmup", a.warmup, "Unmeasured iterations first");
  cmd->add_option("--seed", a.seed, "Seed of the parameters and the random workload");
  cmd->add_option("--memory-budget", a.memoryBudget,
                  "Generated engine: BPTT checkpoint budget in bytes");
  cmd->add_option("--max-memory", a.maxMemory,
                  "Bytes the run may use (default 0: the memory available); a run estimated to "
                  "need more is refused before it allocates")
      ->type_name("BYTES");
  cmd->add_option("--bptt-segment", a.bpttSegment, "Generated engine: forced checkpoint interval");
  cmd->add_option("--json", a.json, "Write the result as JSON to <file>")->type_name("FILE");
  cmd->add_flag("--probe", a.probe,
                "Measure the machine's triad bandwidth and FMA throughput instead");
  cmd->add_option("--threads", a.threads, "Threads (default: all cores)");
  return cmd;
}

/// `dopa grad`: the checks, then tool::runGrad.
int gradCommand(const GradArgs &a) {
  if (a.spec.empty())
    return usage("missing the spec file");
  if (a.paramsPath.empty() == (a.initSeedOption->count() == 0))
    return usage("give exactly one of --params FILE and --init-seed N");
  if (a.inputsPath.empty() || a.outputGradsPath.empty() || a.outPath.empty())
    return usage("--inputs, --output-grads and --out are required");
  if (a.engine != "generic" && a.engine != "generated")
    return usage("--engine is generic or generated");
  if (!setThreads(a.threads))
    return usage(threadsMessage);
  tool::GradOptions opt;
  opt.spec = {a.spec, a.includeDirs, a.dims, a.network};
  opt.paramsPath = a.paramsPath;
  if (a.initSeedOption->count())
    opt.initSeed = a.initSeed;
  opt.saveParamsPath = a.saveParams;
  opt.inputsPath = a.inputsPath;
  opt.outputGradsPath = a.outputGradsPath;
  opt.outPath = a.outPath;
  opt.doublePrecision = a.f64;
  opt.engine = a.engine;
  opt.maxMemory = a.maxMemory;
  return tool::runGrad(opt);
}

/// `dopa train`: the checks, then tool::runTrain.
int trainCommand(const TrainArgs &a) {
  if (a.task != "cue-reward")
    return usage("the task must be 'cue-reward' (the maze task comes later)");
  if (a.outDir.empty())
    return usage("--out DIR is required");
  if (a.baseline != "first-element" && a.baseline != "per-element")
    return usage("--baseline is first-element or per-element");
  if (a.variant != "rnn" && a.variant != "plastic" && a.variant != "modplast" &&
      a.variant != "modul")
    return usage("--variant is rnn, plastic, modplast or modul");
  if (a.batch < 1 || a.eplen < 1 || a.iters < 1)
    return usage("--batch, --eplen and --iters must be positive");
  if (!setThreads(a.threads))
    return usage(threadsMessage);
  if (a.cues < 2)
    return usage("--cues must be at least 2");
  if (a.cuesPerTrial < 1 || a.cuesPerTrial > 2)
    return usage("--cues-per-trial is 1 or 2");
  if (std::string problem = trainNumbersProblem(a); !problem.empty())
    return usage(problem);
  if (!isTrainingEngine(a.engine))
    return usage("--engine is generated, generic or cuda");
  if (a.engine != "generic" && !a.spec.empty())
    return usage("--spec needs --engine generic: the generated engine runs the examples "
                 "compiled at build time (dopa_add_network compiles your own spec)");
  // The spec: --spec, or the variant's example (only the generic engine reads it; the generated
  // engines run the example compiled at build time, so they go on without it).
  std::string path = a.spec;
  if (path.empty()) {
    try {
      path = tool::exampleSpecPath("cue_reward", a.variant);
    } catch (const std::exception &e) {
      if (a.engine == "generic") {
        tool::printError("dopa train", e.what());
        return 1;
      }
    }
  }
  tool::TrainOptions opt;
  opt.spec = {path, {}, a.dims, ""};
  opt.config.task.episodeLength = a.eplen;
  opt.config.task.numCues = a.cues;
  opt.config.task.cuesPerTrial = a.cuesPerTrial;
  opt.config.batch = a.batch;
  opt.config.iterations = a.iters;
  opt.config.seed = a.seed;
  opt.config.adam.lr = a.lr;
  opt.config.clipNorm = a.clip;
  opt.config.burnIn = a.burnIn;
  opt.config.a2c.baseline = a.baseline == "first-element" ? A2CConfig::Baseline::FirstElement
                                                          : A2CConfig::Baseline::PerElement;
  opt.config.checkpointEvery = a.checkpointEvery;
  opt.config.outDir = a.outDir;
  opt.config.threads = omp_get_max_threads(); // --threads, or all cores: recorded in checkpoints
  std::string dimsText;
  for (const std::string &d : a.dims)
    dimsText += " -D" + d;
  opt.config.description = "cue-reward " + (a.spec.empty() ? a.variant : a.spec) + dimsText;
  opt.engine = a.engine;
  opt.task = "cue_reward";
  opt.variant = a.variant;
  opt.dims = a.dims;
  opt.memoryBudget = a.memoryBudget;
  opt.maxMemory = a.maxMemory;
  opt.bpttSegment = a.bpttSegment;
  opt.resume = a.resume;
  return tool::runTrain(opt);
}

/// `dopa bench`: the checks, then tool::runBench.
int benchCommand(const BenchArgs &a) {
  if (!setThreads(a.threads))
    return usage(threadsMessage);
  if (a.probe)
    return tool::runProbe(a.json);
  if (a.network.empty())
    return usage("missing the network, e.g. dopa bench cue_reward/modul");
  if (!isTrainingEngine(a.engine))
    return usage("--engine is generated, generic or cuda");
  if (a.batch < 1 || a.steps < 1 || a.iters < 1 || a.warmup < 0)
    return usage("--batch, --steps and --iters must be positive, --warmup not negative");
  if (std::string problem = notNegative("--memory-budget", a.memoryBudget); !problem.empty())
    return usage(problem);
  if (std::string problem = notNegative("--bptt-segment", a.bpttSegment); !problem.empty())
    return usage(problem);
  tool::BenchOptions opt;
  opt.example = a.network;
  opt.dims = a.dims;
  opt.engine = a.engine;
  opt.batch = a.batch;
  opt.steps = a.steps;
  opt.iters = a.iters;
  opt.warmup = a.warmup;
  opt.seed = a.seed;
  opt.memoryBudget = a.memoryBudget;
  opt.maxMemory = a.maxMemory;
  opt.bpttSegment = a.bpttSegment;
  opt.jsonPath = a.json;
  return tool::runBench(opt);
}

/// Parse and dispatch; exit codes as in Commands.h.
int run(int argc, char **argv) {
  CLI::App app("dopa: train, check and benchmark plastic networks", "dopa");
  app.set_version_flag("--version", std::string("dopa ") + DOPA_VERSION);
  app.require_subcommand(0, 1);
  GradArgs gradArgs;
  TrainArgs trainArgs;
  BenchArgs benchArgs;
  CLI::App *gradCmd = addGradOptions(app, gradArgs);
  CLI::App *trainCmd = addTrainOptions(app, trainArgs);
  CLI::App *benchCmd = addBenchOptions(app, benchArgs);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success))
      return app.exit(e); // --help, --version: printed on stdout
    return usage(e.what());
  }
  if (gradCmd->parsed())
    return gradCommand(gradArgs);
  if (trainCmd->parsed())
    return trainCommand(trainArgs);
  if (benchCmd->parsed())
    return benchCommand(benchArgs);
  std::cout << app.help();
  return 2;
}

} // namespace

int main(int argc, char **argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception &e) { // the subcommands report their own; this is a last resort
    tool::printError("dopa", e.what());
    return 1;
  }
}

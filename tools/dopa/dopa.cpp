//===- dopa.cpp - The dopa tool: train, grad, bench, export -----------------===//
//
// Option parsing (CLI11 subcommands) and dispatch only; each subcommand lives in its own file.
// Exit codes: 0 success, 1 errors in the spec or the data, 2 usage errors.
//
//===----------------------------------------------------------------------===//
#include "Cli.h"
#include "Commands.h"
#include "Console.h"
#include "TrainCommand.h"

#include "dopa/train/Communicator.h"

#ifdef DOPA_HAVE_MPI
#include "dopa/mpi/MpiCommunicator.h"
#endif

#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdint>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

using namespace dopa;
using namespace dopa::tool;

namespace {

/// The ranks of a data-parallel run (main sets it under mpirun); null for one process.
dopa::Communicator *theCommunicator = nullptr;

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
  std::string stageOrder;
  std::string json;
  std::string tracePrecision = "float";
  bool probe = false;
  int threads = 0;
  std::string specNetwork;
  std::vector<CLI::Option *> runOnly; // the options --probe does not take
};

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
                         ->type_name("SEED")
                         ->check(kNotNegative);
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
                  "generic (the IR interpreter; the default) | generated (the network's C++: "
                  "an example's compiled at build time, else compiled on demand)");
  cmd->add_option("--max-memory", a.maxMemory,
                  "Bytes the run may use (default 0: the memory available); input files that "
                  "need more are refused before they are read")
      ->type_name("BYTES")
      ->check(kNotNegative);
  cmd->add_option("--threads", a.threads, "Threads for the batch (default: all cores)");
  return cmd;
}

CLI::App *addBenchOptions(CLI::App &app, BenchArgs &a) {
  CLI::App *cmd = app.add_subcommand(
      "bench", "Time training iterations of an example network (one engine, one size; "
               "bench/sweep.py runs the sweeps), or probe the machine");
  cmd->add_option("network", a.network,
                  "<task/variant, e.g. cue_reward/modul, or a spec file (compiled on demand)>");
  cmd->add_option("--network", a.specNetwork,
                  "With a spec file: the network to time (when the spec has several)")
      ->type_name("NAME");
  addRepeated(cmd, "-D", a.dims,
              "Dimension overrides: -D H=100 (generated: a size this build did not compile is "
              "compiled on demand)",
              "NAME=VALUE");
  cmd->add_option("--engine", a.engine, "generated (default) | generic | cuda");
  cmd->add_option("--batch", a.batch, "Batch elements (default 30)");
  cmd->add_option("--steps", a.steps, "Steps per episode (default 120)");
  cmd->add_option("--iters", a.iters, "Measured iterations (default 5)");
  cmd->add_option("--warmup", a.warmup, "Unmeasured iterations first (default 1)");
  cmd->add_option("--seed", a.seed, "Seed of the parameters and the random workload (default 0)")
      ->check(kNotNegative);
  cmd->add_option("--memory-budget", a.memoryBudget,
                  "Generated engine: BPTT checkpoint budget in bytes");
  cmd->add_option("--max-memory", a.maxMemory,
                  "Bytes the run may use (default 0: the memory available); a run estimated to "
                  "need more is refused before it allocates")
      ->type_name("BYTES")
      ->check(kNotNegative);
  cmd->add_option("--bptt-segment", a.bpttSegment, "Generated engine: forced checkpoint interval");
  cmd->add_option("--stage-order", a.stageOrder, kStageOrderHelp)
      ->check(CLI::IsMember({"auto", "element", "stage"}));
  cmd->add_option("--json", a.json, "Write the result as JSON to <file>")->type_name("FILE");
  cmd->add_option("--trace-precision", a.tracePrecision, kTracePrecisionHelp)
      ->check(CLI::IsMember({"float", "bf16"}));
  for (CLI::Option *opt : cmd->get_options())
    if (opt->get_name() != "--json" && opt->get_name() != "--help")
      a.runOnly.push_back(opt);
  cmd->add_flag("--probe", a.probe,
                "Measure the machine's triad bandwidth and FMA throughput instead (takes --json "
                "and --threads)");
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
  for (auto [flag, path] : {std::pair<const char *, const std::string &>{"--out", a.outPath},
                            {"--save-params", a.saveParams}})
    if (std::string problem = unwritableOutput(flag, path); !problem.empty())
      return usage(problem);
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

/// `dopa bench`: the checks, then tool::runBench.
int benchCommand(const BenchArgs &a) {
  if (!setThreads(a.threads))
    return usage(threadsMessage);
  if (std::string problem = unwritableOutput("--json", a.json); !problem.empty())
    return usage(problem); // before the measurement, not after it
  if (a.probe) {
    for (const CLI::Option *opt : a.runOnly)
      if (opt->count())
        return usage("--probe measures the machine and takes only --json and --threads; " +
                     (opt->get_name().rfind('-', 0) == 0 ? opt->get_name()
                                                         : std::string("the network argument")) +
                     " is for timing a network");
    return tool::runProbe(a.json);
  }
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
  opt.stageOrder = a.stageOrder;
  opt.jsonPath = a.json;
  opt.network = a.specNetwork;
  opt.traceBf16 = isBf16Precision(a.tracePrecision);
  if (std::string problem = tracePrecisionProblem(opt.traceBf16, a.engine); !problem.empty())
    return usage(problem);
  return tool::runBench(opt);
}

/// Parse and dispatch; exit codes as in Commands.h.
int run(int argc, char **argv) {
  CLI::App app("dopa: train, check, benchmark and export plastic networks", "dopa");
  app.set_version_flag("--version", std::string("dopa ") + DOPA_VERSION);
  app.require_subcommand(0, 1);
  GradArgs gradArgs;
  TrainArgs trainArgs;
  BenchArgs benchArgs;
  CLI::App *gradCmd = addGradOptions(app, gradArgs);
  CLI::App *trainCmd = addTrainOptions(app, trainArgs);
  CLI::App *benchCmd = addBenchOptions(app, benchArgs);
  std::string exportSource, exportOut;
  CLI::App *exportCmd = app.add_subcommand(
      "export", "Write a training run's parameters under their spec names (safetensors)");
  exportCmd->add_option("run", exportSource, "<run folder or checkpoint.st>");
  exportCmd->add_option("--out", exportOut, "The safetensors file to write")->type_name("FILE");
  std::string cacheAction = "list";
  CLI::App *cacheCmd = app.add_subcommand(
      "cache", "The networks compiled on demand: list them, clear them, or print the folder "
               "($DOPA_CACHE_DIR, else $XDG_CACHE_HOME/dopa, else ~/.cache/dopa)");
  cacheCmd->add_option("action", cacheAction, "list (default), clear or dir")
      ->check(CLI::IsMember({"list", "clear", "dir"}));
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError &e) {
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success))
      return app.exit(e); // --help, --version: printed on stdout
    return usage(e.what());
  }
  if (gradCmd->parsed())
    return gradCommand(gradArgs);
  if (trainCmd->parsed()) {
    trainArgs.opt.commandLine.assign(argv, argv + argc);
    trainArgs.opt.comm = theCommunicator;
    return trainCommand(trainArgs);
  }
  if (benchCmd->parsed())
    return benchCommand(benchArgs);
  if (cacheCmd->parsed())
    return tool::runCache(cacheAction);
  if (exportCmd->parsed()) {
    if (exportSource.empty() || exportOut.empty())
      return usage("dopa export needs a run folder or checkpoint and --out FILE");
    return tool::runExport(exportSource, exportOut);
  }
  std::cout << app.help();
  return 2;
}

/// Whether the command line trains (on an RL task or a language model: what runs data-parallel).
bool isTrain(int argc, char **argv) {
  return argc > 1 && std::string(argv[1]) == "train"; // options may come before the task
}

/// Run the command line as one process, or as a rank when launcherRanks() says it is one: MPI for
/// the whole process, and a rank that fails ends the job (abortAll), so the others never wait in a
/// collective for it. Anything but `dopa train` started as a rank is refused, and so is a
/// launcher whose ranks MPI does not see (srun without --mpi=pmix, another MPI's mpirun).
int runAsRank(int argc, char **argv) {
  int ranks = launcherRanks();
  std::string started = "this process was started as one of " +
                        (ranks > 0 ? std::to_string(ranks) : std::string("several")) +
                        " ranks (mpirun, srun)";
  if (!isTrain(argc, argv)) {
    tool::printError("dopa", started + ", but only `dopa train` runs data-parallel; run this "
                                       "command as one process (or set DOPA_MPI=0)");
    return 2;
  }
#ifdef DOPA_HAVE_MPI
  dopa::mpi::MpiSession session(argc, argv);
  if (session.worldSize() == 1 && ranks != 1) {
    tool::printError("dopa", started + ", but MPI sees one rank: the launcher is not this dopa's "
                                       "MPI (with srun, pass --mpi=pmix)");
    return 2;
  }
  theCommunicator = session.communicator();
  int rc = 1;
  try {
    rc = run(argc, argv);
  } catch (const std::exception &e) {
    tool::printError("dopa", e.what());
  }
  if (rc != 0 && session.communicator())
    session.abortAll(rc);
  return rc;
#else
  tool::printError("dopa", started + ", but this dopa was built without MPI (install "
                                     "libopenmpi-dev and rebuild), so each would train alone");
  return 2;
#endif
}

} // namespace

int main(int argc, char **argv) {
  if (dopa::launcherRanks() != 1)
    return runAsRank(argc, argv);
  try {
    return run(argc, argv);
  } catch (const std::exception &e) { // the subcommands report their own; this is a last resort
    tool::printError("dopa", e.what());
    return 1;
  }
}

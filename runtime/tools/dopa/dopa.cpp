//===- dopa.cpp - The dopa tool: train, grad, bench --------------------------===//
//
// Option parsing and dispatch only (llvm::cl subcommands); each subcommand lives in its own file.
// Exit codes: 0 success, 1 errors in the spec or the data, 2 usage errors.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/WithColor.h"

#include <omp.h>

using namespace dopa;
namespace cl = llvm::cl;

namespace {
cl::SubCommand gradCmd("grad", "One forward pass over T steps and one BPTT pass: write the "
                               "gradients of every parameter");

cl::opt<std::string> spec(cl::Positional, cl::desc("<spec.dopa>"), cl::sub(gradCmd));
cl::list<std::string> includeDirs("I", cl::desc("Add <dir> to the include path"),
                                  cl::value_desc("dir"), cl::Prefix, cl::sub(gradCmd));
cl::list<std::string> dims("D", cl::desc("Override a network dimension: -D H=4"),
                           cl::value_desc("name=value"), cl::Prefix, cl::sub(gradCmd));
cl::opt<std::string> network("network", cl::desc("The network to use (when the spec has several)"),
                             cl::sub(gradCmd));
cl::opt<std::string> paramsPath("params",
                                cl::desc("Parameters (safetensors, the spec's param names)"),
                                cl::value_desc("file"), cl::sub(gradCmd));
cl::opt<uint64_t> initSeed("init-seed",
                           cl::desc("Initialize the parameters from their initializers"),
                           cl::value_desc("seed"), cl::sub(gradCmd));
cl::opt<std::string> saveParams("save-params", cl::desc("Also write the parameters used"),
                                cl::value_desc("file"), cl::sub(gradCmd));
cl::opt<std::string> inputsPath("inputs", cl::desc("Inputs: one [T, B, ...] tensor per spec input"),
                                cl::value_desc("file"), cl::sub(gradCmd));
cl::opt<std::string> outputGradsPath("output-grads",
                                     cl::desc("dLoss/d outputs: one [T, B, ...] tensor per output "
                                              "(missing outputs get zeros)"),
                                     cl::value_desc("file"), cl::sub(gradCmd));
cl::opt<std::string> outPath("out", cl::desc("Where to write the gradients and the outputs"),
                             cl::value_desc("file"), cl::sub(gradCmd));
cl::opt<bool> f64("f64", cl::desc("Compute in double precision (default: float32)"),
                  cl::sub(gradCmd));

cl::SubCommand trainCmd("train", "Meta-train a network on a task (cue-reward) with A2C");
cl::opt<std::string> task(cl::Positional, cl::desc("<task: cue-reward>"), cl::sub(trainCmd));
cl::opt<std::string> variant("variant",
                             cl::desc("rnn | plastic | modplast | modul (examples/cue_reward)"),
                             cl::init("modul"), cl::sub(trainCmd));
cl::opt<std::string> trainSpec("spec", cl::desc("A spec to train instead of the variant's example"),
                               cl::value_desc("file"), cl::sub(trainCmd));
cl::list<std::string> trainDims("D", cl::desc("Override a network dimension: -D H=50"),
                                cl::value_desc("name=value"), cl::Prefix, cl::sub(trainCmd));
cl::opt<int64_t> iters("iters", cl::desc("Training iterations (batches of episodes)"),
                       cl::init(1000), cl::sub(trainCmd));
cl::opt<uint64_t> seed("seed", cl::desc("Random seed (parameters, tasks, actions)"), cl::init(0),
                       cl::sub(trainCmd));
cl::opt<int> batchSize("batch", cl::desc("Episodes per iteration (--bs)"), cl::init(30),
                       cl::sub(trainCmd));
cl::opt<int> eplen("eplen", cl::desc("Steps per episode"), cl::init(120), cl::sub(trainCmd));
cl::opt<int> numCues("cues",
                     cl::desc("Cues per episode (--ni); with 2, both show in every trial and "
                              "'always respond' is optimal: a sanity check"),
                     cl::init(4), cl::sub(trainCmd));
cl::opt<int> cuesPerTrial("cues-per-trial",
                          cl::desc("Cues shown per trial: 2 (the reference) or 1 (a simpler "
                                   "association, used by the demo)"),
                          cl::init(2), cl::sub(trainCmd));
cl::opt<double> lr("lr", cl::desc("Adam learning rate"), cl::init(1e-4), cl::sub(trainCmd));
cl::opt<double> clip("clip", cl::desc("Global gradient-norm clip (--gc)"), cl::init(2.0),
                     cl::sub(trainCmd));
cl::opt<int64_t> burnIn("burn-in",
                        cl::desc("Iterations without an optimizer step (reference: 101)"),
                        cl::init(101), cl::sub(trainCmd));
cl::opt<std::string>
    baseline("baseline",
             cl::desc("A2C baseline: first-element (the reference code's vs[t][0]) or "
                      "per-element (each episode's own value)"),
             cl::init("first-element"), cl::sub(trainCmd));
cl::opt<std::string> engine("engine",
                            cl::desc("generated (the example's C++, compiled at build time; -D "
                                     "picks a compiled size) | generic (the IR "
                                     "interpreter; needed for --spec and -D)"),
                            cl::init("generated"), cl::sub(trainCmd));
cl::opt<long long>
    memoryBudget("memory-budget",
                 cl::desc("Generated engine: bytes the BPTT checkpoints may use (default 64 MiB)"),
                 cl::init(0), cl::sub(trainCmd));
cl::opt<int> bpttSegment(
    "bptt-segment",
    cl::desc("Generated engine: keep states every <k> steps and recompute in between (default: "
             "planned from --memory-budget)"),
    cl::init(0), cl::sub(trainCmd));
cl::opt<std::string> outDir("out",
                            cl::desc("Output folder: checkpoint.st, log.csv, learning_curve.png"),
                            cl::value_desc("dir"), cl::sub(trainCmd));
cl::opt<bool> resume("resume", cl::desc("Continue the checkpoint in --out"), cl::sub(trainCmd));
cl::opt<int64_t> checkpointEvery("checkpoint-every", cl::desc("Iterations between checkpoints"),
                                 cl::init(100), cl::sub(trainCmd));

cl::SubCommand benchCmd("bench", "Time training iterations of an example network (one engine, "
                                 "one size; bench/sweep.py runs the sweeps), or probe the machine");
cl::opt<std::string> benchNetwork(cl::Positional, cl::desc("<task/variant, e.g. cue_reward/modul>"),
                                  cl::sub(benchCmd));
cl::list<std::string> benchDims("D",
                                cl::desc("Dimension overrides: -D H=100 (generated: a size "
                                         "this build compiled, see DOPA_EXAMPLE_SIZES)"),
                                cl::value_desc("name=value"), cl::Prefix, cl::sub(benchCmd));
cl::opt<std::string> benchEngine("engine", cl::desc("generated | generic"), cl::init("generated"),
                                 cl::sub(benchCmd));
cl::opt<int> benchBatch("batch", cl::desc("Batch elements"), cl::init(30), cl::sub(benchCmd));
cl::opt<int> benchSteps("steps", cl::desc("Steps per episode"), cl::init(120), cl::sub(benchCmd));
cl::opt<int> benchIters("iters", cl::desc("Measured iterations"), cl::init(5), cl::sub(benchCmd));
cl::opt<int> benchWarmup("warmup", cl::desc("Unmeasured iterations first"), cl::init(1),
                         cl::sub(benchCmd));
cl::opt<uint64_t> benchSeed("seed", cl::desc("Seed of the parameters and the random workload"),
                            cl::init(0), cl::sub(benchCmd));
cl::opt<long long> benchBudget("memory-budget",
                               cl::desc("Generated engine: BPTT checkpoint budget in bytes"),
                               cl::init(0), cl::sub(benchCmd));
cl::opt<int> benchSegment("bptt-segment", cl::desc("Generated engine: forced checkpoint interval"),
                          cl::init(0), cl::sub(benchCmd));
cl::opt<std::string> benchJson("json", cl::desc("Write the result as JSON to <file>"),
                               cl::value_desc("file"), cl::sub(benchCmd));
cl::opt<bool> benchProbe("probe",
                         cl::desc("Measure the machine's triad bandwidth and FMA "
                                  "throughput instead"),
                         cl::sub(benchCmd));
cl::opt<int> benchThreads("threads", cl::desc("Threads (default: all cores)"), cl::init(0),
                          cl::sub(benchCmd));

cl::opt<int> gradThreads("threads", cl::desc("Threads for the batch (default: all cores)"),
                         cl::init(0), cl::sub(gradCmd));
cl::opt<int> trainThreads("threads", cl::desc("Threads for the batch (default: all cores)"),
                          cl::init(0), cl::sub(trainCmd));

void setThreads(int n) {
  if (n > 0)
    omp_set_num_threads(n);
}

void printVersion(llvm::raw_ostream &os) { os << "dopa " << DOPA_VERSION << "\n"; }

int usage(const char *msg) {
  llvm::WithColor::error(llvm::errs(), "dopa") << msg << " (see dopa <command> --help)\n";
  return 2;
}
} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM initLLVM(argc, argv);
  cl::SetVersionPrinter(printVersion);
  if (!cl::ParseCommandLineOptions(
          argc, argv, "dopa: train, check and benchmark plastic networks\n", &llvm::errs()))
    return 2;
  if (gradCmd) {
    if (spec.empty())
      return usage("missing the spec file");
    if (paramsPath.empty() == (initSeed.getNumOccurrences() == 0))
      return usage("give exactly one of --params FILE and --init-seed N");
    if (inputsPath.empty() || outputGradsPath.empty() || outPath.empty())
      return usage("--inputs, --output-grads and --out are required");
    setThreads(gradThreads);
    tool::GradOptions opt;
    opt.spec = {
        spec, {includeDirs.begin(), includeDirs.end()}, {dims.begin(), dims.end()}, network};
    opt.paramsPath = paramsPath;
    if (initSeed.getNumOccurrences())
      opt.initSeed = initSeed;
    opt.saveParamsPath = saveParams;
    opt.inputsPath = inputsPath;
    opt.outputGradsPath = outputGradsPath;
    opt.outPath = outPath;
    opt.doublePrecision = f64;
    return tool::runGrad(opt);
  }
  if (trainCmd) {
    if (task != "cue-reward")
      return usage("the task must be 'cue-reward' (the maze task comes later)");
    if (outDir.empty())
      return usage("--out DIR is required");
    if (baseline != "first-element" && baseline != "per-element")
      return usage("--baseline is first-element or per-element");
    if (variant != "rnn" && variant != "plastic" && variant != "modplast" && variant != "modul")
      return usage("--variant is rnn, plastic, modplast or modul");
    if (batchSize < 1 || eplen < 1 || iters < 1)
      return usage("--batch, --eplen and --iters must be positive");
    setThreads(trainThreads);
    tool::TrainOptions opt;
    std::string path = trainSpec.empty()
                           ? std::string(DOPA_EXAMPLES_DIR "/cue_reward/") + variant + ".dopa"
                           : std::string(trainSpec);
    opt.spec = {path, {}, {trainDims.begin(), trainDims.end()}, ""};
    opt.config.task.episodeLength = eplen;
    if (numCues < 2)
      return usage("--cues must be at least 2");
    opt.config.task.numCues = numCues;
    if (cuesPerTrial < 1 || cuesPerTrial > 2)
      return usage("--cues-per-trial is 1 or 2");
    opt.config.task.cuesPerTrial = cuesPerTrial;
    opt.config.batch = batchSize;
    opt.config.iterations = iters;
    opt.config.seed = seed;
    opt.config.adam.lr = lr;
    opt.config.clipNorm = clip;
    opt.config.burnIn = burnIn;
    opt.config.a2c.baseline = baseline == "first-element" ? A2CConfig::Baseline::FirstElement
                                                          : A2CConfig::Baseline::PerElement;
    opt.config.checkpointEvery = checkpointEvery;
    opt.config.outDir = outDir;
    std::string dimsText;
    for (const std::string &d : trainDims)
      dimsText += " -D" + d;
    opt.config.description = "cue-reward " + (trainSpec.empty() ? variant : trainSpec) + dimsText;
    opt.engine = engine;
    if (engine != "generic" && engine != "generated")
      return usage("--engine is generated or generic");
    if (engine == "generated" && !trainSpec.empty())
      return usage("--spec needs --engine generic: the generated engine runs the examples "
                   "compiled at build time (dopa_add_network compiles your own spec)");
    opt.task = "cue_reward";
    opt.variant = variant;
    opt.dims = {trainDims.begin(), trainDims.end()};
    opt.memoryBudget = memoryBudget;
    opt.bpttSegment = bpttSegment;
    opt.resume = resume;
    return tool::runTrain(opt);
  }
  if (benchCmd) {
    setThreads(benchThreads);
    if (benchProbe)
      return tool::runProbe(benchJson);
    if (benchNetwork.empty())
      return usage("missing the network, e.g. dopa bench cue_reward/modul");
    if (benchEngine != "generated" && benchEngine != "generic")
      return usage("--engine is generated or generic");
    if (benchBatch < 1 || benchSteps < 1 || benchIters < 1 || benchWarmup < 0)
      return usage("--batch, --steps and --iters must be positive, --warmup not negative");
    tool::BenchOptions opt;
    opt.example = benchNetwork;
    opt.dims = {benchDims.begin(), benchDims.end()};
    opt.engine = benchEngine;
    opt.batch = benchBatch;
    opt.steps = benchSteps;
    opt.iters = benchIters;
    opt.warmup = benchWarmup;
    opt.seed = benchSeed;
    opt.memoryBudget = benchBudget;
    opt.bpttSegment = benchSegment;
    opt.jsonPath = benchJson;
    return tool::runBench(opt);
  }
  cl::PrintHelpMessage(false, true);
  return 2;
}

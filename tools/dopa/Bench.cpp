//===- Bench.cpp - `dopa bench`: time one training iteration of a network ---===//
//
// One measurement, in this process alone (the sweep driver bench/sweep.py starts one process per
// engine and size, so peak RSS belongs to one engine): an example network on one engine (generated
// C++, CUDA or generic; Engines.h) at the given batch and steps. A training iteration is the same
// work the PyTorch formulation (bench/reference/bench_iteration.py) does: an episode of `steps`
// forward steps on fixed random inputs, backpropagation through the whole episode of the loss Σ_t
// <dY_t, Y_t> for fixed random dY, global gradient-norm clipping at 2.0 and an Adam step. Prints
// one line and writes JSON: per-iteration seconds after `warmup` unmeasured ones (median, min,
// max, and the medians of its phases: forward, backward, clipping with the update), peak RSS,
// FLOPs per iteration (the compiler's count of the forward and backward graphs) and GFLOP/s, and
// for the generated engine the checkpoint plan and its predicted bytes.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"
#include "Console.h"
#include "Engines.h"

#include "dopa/examples/ExampleNetworks.h"
#include "dopa/runtime/SafeTensors.h"
#include "dopa/runtime/Workload.h"
#include "dopa/train/Optim.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <omp.h>
#include <stdexcept>
#include <sys/resource.h>
#include <unistd.h>

using namespace dopa;
using namespace dopa::tool;
using json = nlohmann::ordered_json;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

int64_t peakRssBytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return int64_t(usage.ru_maxrss) * 1024;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// Write `j` to `path` atomically (the checkpoints' writer); throws DataError naming the file.
void writeJson(const std::string &path, const json &j) {
  if (!path.empty())
    writeFileAtomically(path, j.dump(2) + "\n");
}

std::string hostCpu() {
  std::ifstream is("/proc/cpuinfo");
  std::string line;
  while (std::getline(is, line))
    if (line.rfind("model name", 0) == 0) {
      size_t colon = line.find(':');
      return colon == std::string::npos ? line : line.substr(colon + 2);
    }
  return "unknown";
}

json machineJson() {
  return {{"cpu", hostCpu()},
          {"cores", long(sysconf(_SC_NPROCESSORS_ONLN))},
          {"threads", omp_get_max_threads()}};
}

} // namespace

static int benchOne(const BenchOptions &opt);
static int probeOne(const std::string &jsonPath);

/// Errors (a file that cannot be written, an allocation the machine cannot hold) are messages.
template <class Fn> static int reportingErrors(Fn fn) {
  try {
    return fn();
  } catch (const std::exception &e) {
    printError("dopa bench", e.what());
    return 1;
  }
}

int tool::runProbe(const std::string &jsonPath) {
  return reportingErrors([&] { return probeOne(jsonPath); });
}

int tool::runBench(const BenchOptions &opt) {
  return reportingErrors([&] { return benchOne(opt); });
}

static int probeOne(const std::string &jsonPath) {
  printStderr("dopa bench --probe: triad bandwidth and FMA throughput, " +
              std::to_string(omp_get_max_threads()) + " threads...\n");
  MachineCeiling c = probeMachine();
  if (c.triadBytesPerSecond <= 0 || c.fmaFlopsPerSecond <= 0) {
    printError("dopa bench", "a probe computed a wrong result");
    return 1;
  }
  printStdout(format("triad bandwidth %.2f GB/s, float32 FMA %.1f GFLOP/s (%d threads)\n",
                     c.triadBytesPerSecond * 1e-9, c.fmaFlopsPerSecond * 1e-9, c.threads));
  json j = {{"kind", "machine"},
            {"machine", machineJson()},
            {"triad_GBps", c.triadBytesPerSecond * 1e-9},
            {"fma_f32_GFLOPs", c.fmaFlopsPerSecond * 1e-9}};
  writeJson(jsonPath, j);
  return 0;
}

/// The engine request for `opt.example`: an example, <task>/<variant> (the generic engine
/// interprets its spec; the generated engine compiles it on demand at a size this build lacks), or
/// a spec file of the user's own (compiled on demand). False after a usage error.
static bool benchRequest(const BenchOptions &opt, EngineRequest &request) {
  std::error_code ec;
  bool specFile =
      opt.example.ends_with(".dopa") && std::filesystem::is_regular_file(opt.example, ec);
  auto slash = opt.example.find('/');
  if (slash == std::string::npos && !specFile) {
    printError("dopa bench", "the network is <task>/<variant>, e.g. cue_reward/modul, or a spec "
                             "file; got '" +
                                 opt.example + "'");
    return false;
  }
  if (!specFile || !splitExampleName(opt.example, request.task, request.variant)) {
    request.task = opt.example.substr(0, slash == std::string::npos ? 0 : slash);
    request.variant = opt.example.substr(slash == std::string::npos ? 0 : slash + 1);
  }
  request.engine = opt.engine;
  request.dims = opt.dims;
  request.memoryBudget = opt.memoryBudget;
  request.bpttSegment = opt.bpttSegment;
  request.stageOrder = opt.stageOrder;
  request.expectedSteps = opt.steps;
  request.batch = opt.batch;
  request.maxMemory = opt.maxMemory;
  if (specFile) {
    request.spec.path = opt.example;
    request.spec.network = opt.network;
    request.onDemand = opt.engine == "generated";
  } else {
    if (!opt.network.empty()) {
      printError("dopa bench", "--network picks a network of a spec file; " + opt.example +
                                   " is an example, which has one");
      return false;
    }
    try {
      request.spec.path = exampleSpecPath(request.task, request.variant);
      request.spec.includeDirs = {exampleDir(request.task)};
    } catch (const std::exception &) {
      request.spec = {}; // no examples folder: only the networks compiled into this build run
    }
  }
  request.spec.dimOverrides = opt.dims;
  request.spec.traceBf16 = opt.traceBf16;
  return true;
}

static int benchOne(const BenchOptions &opt) {
  EngineRequest request;
  if (!benchRequest(opt, request))
    return 2;
  std::string dims = canonicalDims(opt.dims);
  EngineNetwork engine = makeEngineNetwork(request, "dopa bench");
  if (!engine.net)
    return engine.exitCode;
  std::unique_ptr<Network> net = std::move(engine.net);
  GeneratedNetwork *gen = engine.generated;
  const int64_t *inputRows = engine.inputRows.data();

  const NetworkInfo &info = net->info();
  initParams(info, net->params(), opt.seed);
  Workload work(info, inputRows, opt.batch, opt.steps, opt.seed + 1);
  AdamConfig adamCfg;
  adamCfg.lr = 1e-4;
  Adam adam(adamCfg, info.numParams);

  double flopsPerIter = engine.flops.perIteration(opt.batch, opt.steps);
  printStderr("dopa bench: " + opt.example + (dims.empty() ? "" : " " + dims) + " (" +
              std::to_string(info.numParams) + " parameters), engine " + opt.engine +
              tracePrecisionSuffix(opt.traceBf16) + ", B=" + std::to_string(opt.batch) +
              " T=" + std::to_string(opt.steps) + ", " + std::to_string(omp_get_max_threads()) +
              " threads, " + std::to_string(opt.warmup) + "+" + std::to_string(opt.iters) +
              " iterations\n");
  std::vector<double> times, fwdTimes, bwdTimes, updTimes; // the iteration and its three phases
  bool tty = isatty(2);
  for (int it = 0; it < opt.warmup + opt.iters; ++it) {
    double t0 = now();
    net->zeroGrads();
    net->beginEpisode(opt.batch);
    net->forward(opt.steps, work.inputs.data(), work.outputs.data());
    double t1 = now();
    net->backward(work.outputGrads.data());
    double t2 = now();
    double norm = clipGradNorm(net->grads(), info.numParams, 2.0);
    adam.step(net->params(), net->grads());
    double t3 = now(), dt = t3 - t0;
    if (!std::isfinite(norm)) {
      // nan, INF or -INF: the spelling this message has always had
      const char *spelling = std::isnan(norm) ? "nan" : norm < 0 ? "-INF" : "INF";
      printError("dopa bench", std::string("the gradient norm is ") + spelling);
      return 1;
    }
    if (it >= opt.warmup) {
      times.push_back(dt);
      fwdTimes.push_back(t1 - t0); // with zeroGrads and beginEpisode
      bwdTimes.push_back(t2 - t1);
      updTimes.push_back(t3 - t2);
    }
    if (tty)
      printStderr(format("\r  iteration %d/%d: %.4f s", it + 1, opt.warmup + opt.iters, dt));
  }
  if (tty)
    printStderr("\n");

  double med = median(times), lo = *std::min_element(times.begin(), times.end()),
         hi = *std::max_element(times.begin(), times.end());
  int64_t rss = peakRssBytes();
  json j = {{"kind", "iteration"},
            {"network", opt.example},
            {"dims", dims},
            {"engine", opt.engine},
            {"trace_precision", opt.traceBf16 ? "bf16" : "float"},
            {"batch", opt.batch},
            {"steps", opt.steps},
            {"threads", omp_get_max_threads()},
            {"params", info.numParams},
            {"warmup", opt.warmup},
            {"times_s", times},
            {"median_s", med},
            {"phases_median_s",
             {{"forward", median(fwdTimes)},
              {"backward", median(bwdTimes)},
              {"update", median(updTimes)}}},
            {"min_s", lo},
            {"max_s", hi},
            {"peak_rss_bytes", rss},
            {"flops_per_iter", flopsPerIter},
            {"gflops", flopsPerIter / med * 1e-9},
            {"machine", machineJson()}};
  if (gen) {
    const CheckpointPlan &plan = gen->executor().lastPlan();
    j["plan"] = {{"outer", plan.outer},
                 {"inner", plan.inner},
                 {"replays", plan.replays},
                 {"predicted_bytes", plan.totalBytes},
                 {"measured_peak_held_bytes", gen->executor().lastPeakBytes()}};
  }
  printStdout(format("%s %s B=%d T=%d: median %.4f s (min %.4f, max %.4f), peak RSS %.1f MB, "
                     "%.2f GFLOP/s; forward %.4f, backward %.4f, update %.4f s\n",
                     opt.example.c_str(), (opt.engine + (opt.traceBf16 ? " bf16" : "")).c_str(),
                     opt.batch, opt.steps, med, lo, hi, double(rss) / 1e6,
                     flopsPerIter / med * 1e-9, median(fwdTimes), median(bwdTimes),
                     median(updTimes)));
  writeJson(opt.jsonPath, j);
  return 0;
}

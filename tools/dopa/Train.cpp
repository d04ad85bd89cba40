//===- Train.cpp - `dopa train <task>`: meta-train a plastic network ------===//
//
// Runs the variant's network on the engine asked for (Engines.h: the generated C++ compiled at
// build time, the default; its generated CUDA; or the generic executor on any spec), trains it with
// A2C on the task (Trainer; the task comes configured from TrainCommand.cpp), shows a progress line
// with the running reward and the ETA, writes log.csv and checkpoint.st to --out (atomically),
// resumes bit-exactly with --resume, and draws learning_curve.png with gnuplot at the end. The run
// holds a lock on --out (RunLock) from before it reads or writes anything there until it ends.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"
#include "Console.h"
#include "Engines.h"
#include "RunConfig.h"

#include "dopa/examples/ExampleNetworks.h"
#include "dopa/runtime/SafeTensors.h"
#include "dopa/train/Trainer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>
#include <unistd.h>

using namespace dopa;
using namespace dopa::tool;

namespace {

std::string formatDuration(double seconds) {
  char buf[32];
  long s = std::lround(seconds);
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", s / 3600, (s / 60) % 60);
  else
    std::snprintf(buf, sizeof buf, "%ldm%02lds", s / 60, s % 60);
  return buf;
}

/// One progress line, redrawn in place on a terminal, printed every 10% otherwise.
class Progress {
public:
  explicit Progress(int64_t start) : tty(isatty(2)), start(start) {}
  void update(const TrainConfig &cfg, const IterationLog &log) {
    recent.push_back(log.meanReward);
    if (recent.size() > 20)
      recent.erase(recent.begin());
    total += log.seconds;
    ++done;
    double avg = 0;
    for (double r : recent)
      avg += r;
    avg /= double(recent.size());
    int64_t it = log.iteration + 1;
    double eta = total / double(done) * double(cfg.iterations - it);
    int width = 24, filled = int(double(width) * double(it) / double(cfg.iterations));
    char line[256];
    std::snprintf(line, sizeof line,
                  "[%s%s] %lld/%lld | reward %+6.2f (last 20: %+6.2f) | %.2f s/it | ETA %s",
                  std::string(size_t(filled), '#').c_str(),
                  std::string(size_t(width - filled), '.').c_str(), static_cast<long long>(it),
                  static_cast<long long>(cfg.iterations), log.meanReward, avg, total / double(done),
                  formatDuration(eta).c_str());
    if (tty) {
      std::fprintf(stderr, "\r%s", line);
      if (it == cfg.iterations)
        std::fprintf(stderr, "\n");
    } else if (it == cfg.iterations ||
               (it - start) % std::max<int64_t>(1, cfg.iterations / 10) == 0) {
      std::fprintf(stderr, "%s\n", line);
    }
  }

private:
  bool tty;
  int64_t start;
  std::vector<double> recent;
  double total = 0;
  int64_t done = 0;
};

/// When `path` exists and is not a regular file, what it is ("<path>: is a directory"); else "".
std::string notAFile(const std::string &path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status) || fs::is_regular_file(status))
    return "";
  return path + (fs::is_directory(status) ? ": is a directory" : ": is not a regular file");
}

/// The rank-0-only parts of a run: everything that writes or prints.
bool isRoot(const Communicator *comm) { return !comm || comm->rank() == 0; }

/// "" when every rank has the same settings and state (iteration, optimizer, generators,
/// parameters); else what differs (the same text on every rank).
std::string rankMismatch(Communicator *comm, Trainer &trainer) {
  if (!comm)
    return "";
  std::string text;
  for (const auto &[key, value] : trainer.settings())
    text.append(key).append("=").append(value).append("\n");
  return comm->firstDifference(text + trainer.stateDigest());
}

/// Start or resume `net` on the task and train it; the exit code. With ranks, rank 0 holds the
/// run folder and writes and prints everything; every rank reads a checkpoint it resumes.
int trainOn(Network &net, const TrainOptions &opt, const TaskInfo &info,
            const TaskOptions &taskOptions) {
  Communicator *comm = opt.comm;
  bool root = isRoot(comm);
  std::unique_ptr<EpisodicTask> taskPtr = info.make(opt.config.batch, taskOptions);
  EpisodicTask &task = *taskPtr;
  TrainConfig config = opt.config;
  config.engine = opt.engine; // part of the checkpoint's fingerprint
  if (!root)
    config.outDir.clear(); // no files from the other ranks
  Trainer trainer(net, task, config, comm);
  std::string ckpt = (std::filesystem::path(opt.config.outDir) / "checkpoint.st").string();
  std::unique_ptr<RunLock> lock; // held until the run ends: a second run on --out stops here
  if (root)
    lock = std::make_unique<RunLock>(opt.config.outDir);
  if (std::string problem = notAFile(ckpt); !problem.empty())
    throw DataError(problem);
  if (opt.resume) {
    trainer.resume(ckpt);
    int64_t at = trainer.state().iteration;
    if (opt.config.iterations <= at) {
      printError("dopa train", ckpt + ": the checkpoint is at iteration " + std::to_string(at) +
                                   "; --iters " + std::to_string(opt.config.iterations) +
                                   " asks for no more: pass a larger --iters");
      return 2;
    }
    if (root)
      printStderr("dopa train: resuming " + ckpt + " at iteration " + std::to_string(at) + "\n");
  } else {
    if (root && std::filesystem::exists(ckpt))
      throw DataError(
          ckpt + ": a checkpoint exists; pass --resume to continue it, or choose another --out");
    trainer.initFresh();
  }
  if (std::string differs = rankMismatch(comm, trainer); !differs.empty()) {
    printError("dopa train", "the ranks were not started alike: " + differs);
    return 2;
  }
  if (!root)
    return trainer.run(), 0;
  writeRunConfig(opt.config.outDir, opt.commandLine, trainer.settings(), trainer.state().iteration);
  std::string ranks = comm ? ", " + std::to_string(comm->size()) + " ranks" : "";
  printStderr("dopa train: " + opt.config.task + " task, " + net.info().name + " (" +
              std::to_string(net.info().numLearned()) + " parameters), batch " +
              std::to_string(opt.config.batch) + ", " + std::to_string(task.episodeLength()) +
              "-step episodes, " + std::to_string(opt.config.iterations) + " iterations, engine " +
              opt.engine + ranks + "\n");
  Progress progress(trainer.state().iteration);
  try {
    trainer.run([&](const TrainConfig &c, const IterationLog &l) { progress.update(c, l); });
  } catch (const std::runtime_error &e) {
    printError("dopa train",
               std::string(e.what()) + "; " +
                   (std::filesystem::exists(ckpt) ? "the last good checkpoint is kept at " + ckpt
                                                  : std::string("no checkpoint was written yet")));
    return 1;
  }
  std::string png = (std::filesystem::path(opt.config.outDir) / "learning_curve.png").string();
  if (plotLearningCurve({{net.info().name, trainer.state().log}}, png,
                        opt.config.task + " task: " + net.info().name))
    printStderr("dopa train: learning curve " + png + "\n");
  const auto &log = trainer.state().log;
  double last = 0;
  size_t n = std::min<size_t>(log.size(), 50);
  for (size_t i = log.size() - n; i < log.size(); ++i)
    last += log[i].meanReward;
  printStdout(format("final mean reward (last %zu iterations): %.3f\n", n, last / double(n)));
  return 0;
}

} // namespace

int tool::runTrain(const TrainOptions &opt, const TaskInfo &info, const TaskOptions &taskOptions) {
  // The episode length for the memory check, from a task of one episode; the real one after it.
  int episodeLength = info.make(1, taskOptions)->episodeLength();
  EngineRequest request;
  request.engine = opt.engine;
  request.task = opt.task;
  request.variant = opt.variant;
  request.dims = opt.dims;
  request.spec = opt.spec;
  request.onDemand = opt.specGiven;
  request.memoryBudget = opt.memoryBudget;
  request.bpttSegment = opt.bpttSegment;
  request.stageOrder = opt.stageOrder;
  request.expectedSteps = episodeLength;
  request.batch = opt.config.batch; // this process's episodes: its slice with ranks
  if (opt.comm) {
    auto [first, last] = batchSlice(opt.config.batch, opt.comm->rank(), opt.comm->size());
    request.batch = std::max(1, last - first);
    request.localRank = opt.comm->localRank();
  }
  request.maxMemory = opt.maxMemory;
  EngineNetwork engine = makeEngineNetwork(request, "dopa train");
  if (!engine.net)
    return engine.exitCode;
  std::unique_ptr<Network> netPtr = std::move(engine.net);
  try {
    return trainOn(*netPtr, opt, info, taskOptions);
  } catch (const std::exception &e) {
    printError("dopa train", e.what());
    return 1;
  }
}

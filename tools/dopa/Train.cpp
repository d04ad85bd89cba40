//===- Train.cpp - `dopa train <task>`: meta-train a plastic network ------===//
//
// Runs the variant's network on the engine asked for (Engines.h: the generated C++ compiled at
// build time, the default; its generated CUDA; or the generic executor on any spec), trains it with
// A2C on the task (Trainer; the task comes configured from TrainCommand.cpp), shows a progress line
// with the running reward and the ETA, writes log.csv and checkpoint.st to --out (atomically),
// resumes bit-exactly with --resume, and draws learning_curve.png with gnuplot at the end. The run
// holds a lock on --out (RunLock) from before it reads or writes anything there until it ends.
// With --seeds, one such run per seed in this process, several at a time on their own threads
// (runSeeds), each in --out/seed-<seed>, with one progress line and one plot for all.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"
#include "Console.h"
#include "Engines.h"
#include "RunConfig.h"

#include "dopa/examples/ExampleNetworks.h"
#include "dopa/runtime/Memory.h"
#include "dopa/runtime/SafeTensors.h"
#include "dopa/train/Trainer.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
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

/// The mean reward of the last 50 iterations of `log` (of all, when fewer); 0 for none.
double finalReward(const std::vector<IterationLog> &log) {
  size_t n = std::min<size_t>(log.size(), 50);
  double sum = 0;
  for (size_t i = log.size() - n; i < log.size(); ++i)
    sum += log[i].meanReward;
  return n ? sum / double(n) : 0;
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

/// How a run of several seeds (dopa train --seeds) runs each of them: quietly (one progress line
/// for all, SeedsProgress), its messages prefixed with its seed, a finished checkpoint not an
/// error.
struct SeedRun {
  std::string label;                                     // "seed 3: "
  std::function<void(int64_t start)> started;            // the first iteration it runs
  std::function<void(const IterationLog &log)> progress; // after each iteration
  std::vector<IterationLog> log;                         // its whole log, at the end
  bool complete = false; // the checkpoint was at --iters already: nothing ran
};

/// Start or resume `net` on the task and train it; the exit code. With ranks, rank 0 holds the
/// run folder and writes and prints everything; every rank reads a checkpoint it resumes. `seed`
/// (not null) runs it as one of several seeds.
int trainOn(Network &net, const TrainOptions &opt, const TaskInfo &info,
            const TaskOptions &taskOptions, SeedRun *seed = nullptr) {
  Communicator *comm = opt.comm;
  bool root = isRoot(comm);
  const std::string label = seed ? seed->label : "";
  std::unique_ptr<EpisodicTask> taskPtr = info.make(opt.config.batch, taskOptions);
  EpisodicTask &task = *taskPtr;
  TrainConfig config = opt.config;
  config.engine = opt.engine; // part of the checkpoint's fingerprint
  if (!root)
    config.outDir.clear(); // no files from the other ranks
  Trainer trainer(net, task, config, comm);
  std::string ckpt = (std::filesystem::path(opt.config.outDir) / "checkpoint.st").string();
  if (opt.resume && root)
    requireRunFolder(opt.config.outDir); // before the lock would make it
  std::unique_ptr<RunLock> lock; // held until the run ends: a second run on --out stops here
  if (root)
    lock = std::make_unique<RunLock>(opt.config.outDir);
  requireRegularFile(ckpt); // also before a fresh run: a folder there is not "a checkpoint"
  if (opt.resume) {
    trainer.resume(ckpt);
    int64_t at = trainer.state().iteration;
    if (opt.config.iterations <= at && seed) {
      seed->log = trainer.state().log;
      seed->complete = true;
      return 0;
    }
    if (opt.config.iterations <= at) {
      printError("dopa train", ckpt + ": the checkpoint is at iteration " + std::to_string(at) +
                                   "; --iters " + std::to_string(opt.config.iterations) +
                                   " asks for no more: pass a larger --iters");
      return 2;
    }
    if (root)
      printStderr("dopa train: " + label + "resuming " + ckpt + " at iteration " +
                  std::to_string(at) + "\n");
    if (root && trainer.episodeRngSwitched())
      printStderr("dopa train: " + label + "note: from iteration " + std::to_string(at) +
                  " on, the episodes draw " +
                  (trainer.settings().at("episode_rng") == "per-element" ? "per element"
                                                                         : "for the batch") +
                  " (--episode-rng): an unbroken run would have drawn other episodes from here; "
                  "the checkpoints record the switch (episode_rng_since)\n");
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
  if (std::string note = writeRunConfig(opt.config.outDir, opt.commandLine, trainer.settings(),
                                        trainer.state().iteration);
      !note.empty())
    printNote("dopa train", note);
  std::string ranks = comm ? ", " + std::to_string(comm->size()) + " ranks" : "";
  if (!seed)
    printStderr("dopa train: " + opt.config.task + " task, " + net.info().name + " (" +
                std::to_string(net.info().numLearned()) + " parameters), batch " +
                std::to_string(opt.config.batch) + ", " + std::to_string(task.episodeLength()) +
                "-step episodes, " + std::to_string(opt.config.iterations) +
                " iterations, engine " + opt.engine + ranks + "\n");
  if (!seed && root && trainer.state().iteration == 0 &&
      opt.config.iterations <= opt.config.burnIn) // said once, when the run starts
    printNote("dopa train", "all " + std::to_string(opt.config.iterations) +
                                " iterations are in the burn-in (--burn-in " +
                                std::to_string(opt.config.burnIn) +
                                "): no optimizer step is taken, the parameters stay as they are");
  Progress progress(trainer.state().iteration);
  if (seed)
    seed->started(trainer.state().iteration);
  try {
    trainer.run([&](const TrainConfig &c, const IterationLog &l) {
      if (seed)
        seed->progress(l);
      else
        progress.update(c, l);
    });
  } catch (const std::runtime_error &e) {
    printError("dopa train",
               label + e.what() + "; " +
                   (std::filesystem::exists(ckpt) ? "the last good checkpoint is kept at " + ckpt
                                                  : std::string("no checkpoint was written yet")));
    return 1;
  }
  std::string png = (std::filesystem::path(opt.config.outDir) / "learning_curve.png").string();
  bool plotted = plotLearningCurve({{net.info().name, trainer.state().log}}, png,
                                   opt.config.task + " task: " + net.info().name);
  if (seed) {
    seed->log = trainer.state().log;
    return 0;
  }
  if (plotted)
    printStderr("dopa train: learning curve " + png + "\n");
  printStdout(format("final mean reward (last %zu iterations): %.3f\n",
                     std::min<size_t>(trainer.state().log.size(), 50),
                     finalReward(trainer.state().log)));
  return 0;
}

/// One progress line for the runs of `dopa train --seeds`: the iterations done of all the seeds',
/// how many run, the mean over the running seeds of their last 20 rewards, iterations per second
/// in all, the time left. Redrawn in place on a terminal, printed every 10% otherwise.
class SeedsProgress {
public:
  SeedsProgress(size_t runs, int64_t iterations)
      : tty(isatty(2)), iterations(iterations), seeds(runs) {}

  void started(size_t run, int64_t at) {
    std::lock_guard<std::mutex> guard(mutex);
    if (!clockStarted) {
      begin = std::chrono::steady_clock::now();
      clockStarted = true;
    }
    seeds[run].at = at;
    seeds[run].running = true;
  }
  void update(size_t run, const IterationLog &log) {
    std::lock_guard<std::mutex> guard(mutex);
    PerSeed &p = seeds[run];
    p.recent.push_back(log.meanReward);
    if (p.recent.size() > 20)
      p.recent.erase(p.recent.begin());
    p.at = log.iteration + 1;
    ++ran;
    draw(false);
  }
  void finished(size_t run, int64_t at) {
    std::lock_guard<std::mutex> guard(mutex);
    seeds[run].running = false;
    seeds[run].at = std::max(seeds[run].at, at);
  }
  /// The last line, once every thread has ended (whether the seeds finished, failed or never ran).
  void close() {
    std::lock_guard<std::mutex> guard(mutex);
    if (ran > 0)
      draw(true);
  }

private:
  struct PerSeed {
    int64_t at = 0;
    bool running = false;
    std::vector<double> recent;
  };
  void draw(bool last) {
    int64_t done = 0, all = iterations * int64_t(seeds.size());
    int running = 0, withRewards = 0;
    double reward = 0;
    for (const PerSeed &p : seeds) {
      done += std::min(p.at, iterations);
      running += p.running;
      if (p.recent.empty())
        continue;
      double sum = 0;
      for (double r : p.recent)
        sum += r;
      reward += sum / double(p.recent.size());
      ++withRewards;
    }
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    double rate = seconds > 0 ? double(ran) / seconds : 0;
    double eta = rate > 0 ? double(all - done) / rate : 0;
    int width = 24, filled = all > 0 ? int(double(width) * double(done) / double(all)) : width;
    char line[256];
    std::snprintf(line, sizeof line,
                  "[%s%s] %lld/%lld iterations of %zu seeds, %d running | reward %+6.2f (last 20, "
                  "mean of seeds) | %.1f it/s in all | ETA %s",
                  std::string(size_t(filled), '#').c_str(),
                  std::string(size_t(width - filled), '.').c_str(), static_cast<long long>(done),
                  static_cast<long long>(all), seeds.size(), running,
                  withRewards ? reward / withRewards : 0.0, rate, formatDuration(eta).c_str());
    int64_t step = std::max<int64_t>(1, all / 10);
    if (tty) {
      std::fprintf(stderr, "\r%s%s", line, last ? "\n" : "");
    } else if (last || (done < all && done / step != printedAt)) {
      printedAt = done / step;
      std::fprintf(stderr, "%s\n", line);
    }
  }

  std::mutex mutex;
  bool tty;
  int64_t iterations;
  std::vector<PerSeed> seeds;
  std::chrono::steady_clock::time_point begin;
  bool clockStarted = false;
  int64_t ran = 0, printedAt = 0;
};

/// What the engine is asked for: the run's network at its batch (with ranks, this process's
/// slice), sized for episodes of `episodeLength` steps.
EngineRequest engineRequest(const TrainOptions &opt, int episodeLength) {
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
  return request;
}

/// The thread count seed checkpoint `path` records, or 0 (none recorded, no checkpoint, or one the
/// resume will report as damaged).
int recordedThreads(const std::string &path) {
  try {
    std::map<std::string, std::string> metadata = readSafeTensorsMetadata(path);
    auto it = metadata.find("threads");
    return it == metadata.end() ? 0 : int(metadataCount(it->second, path, "threads"));
  } catch (const std::exception &) {
    return 0;
  }
}

/// Every seed's outcome on stdout, the mean over the seeds that ran, their curves in one picture
/// (--out/learning_curves.png); the exit code: the first failure's, else 0. The seeds from `taken`
/// on were not run (the engine could not be made).
int reportSeeds(const TrainOptions &opt, const std::vector<SeedRun> &runs,
                const std::vector<int> &codes, size_t taken) {
  namespace fs = std::filesystem;
  const size_t n = runs.size();
  std::vector<std::pair<std::string, std::vector<IterationLog>>> curves;
  std::vector<double> finals;
  int code = 0;
  for (size_t i = 0; i < n; ++i) {
    std::string name = "seed " + std::to_string(opt.seeds[i]);
    const bool skipped = i >= taken;
    if (skipped || codes[i] != 0) {
      printStdout(name + ": " +
                  (skipped ? std::string("not run")
                           : "failed (exit code " + std::to_string(codes[i]) + ")") +
                  "\n");
      code = code ? code : (skipped ? 1 : codes[i]);
      continue;
    }
    const std::vector<IterationLog> &log = runs[i].log;
    finals.push_back(finalReward(log));
    printStdout(format("%s: final mean reward (last %zu iterations): %.3f%s\n", name.c_str(),
                       std::min<size_t>(log.size(), 50), finals.back(),
                       runs[i].complete ? " (its checkpoint was at --iters already)" : ""));
    curves.emplace_back(name, log);
  }
  if (finals.size() > 1) {
    double mean = 0, var = 0;
    for (double f : finals)
      mean += f;
    mean /= double(finals.size());
    for (double f : finals)
      var += (f - mean) * (f - mean);
    printStdout(format("final mean reward over %zu seeds: %.3f (standard deviation %.3f)\n",
                       finals.size(), mean, std::sqrt(var / double(finals.size() - 1))));
  }
  std::string png = (fs::path(opt.config.outDir) / "learning_curves.png").string();
  if (!curves.empty() &&
      plotLearningCurve(curves, png, opt.config.task + " task: " + opt.config.description))
    printStderr("dopa train: learning curves " + png + "\n");
  return code;
}

/// `dopa train --seeds`: one run per seed in this process, `runsAtOnce` at a time on as many
/// threads, in --out/seed-<seed>. Each run gets its share of the OpenMP threads (a resumed seed
/// keeps the count its checkpoint records: it sets the order of sums) and of --max-memory (the
/// check before it allocates; --memory-budget is each executor's own). With --resume, a seed with
/// a checkpoint continues it and one without starts. Each seed's run is the run `--seed <seed>
/// --threads <its share>` makes: bit for bit on the CPU engines; on the GPU up to the last bits
/// of its atomic sums, which differ between any two runs there.
int runSeeds(const TrainOptions &opt, const TaskInfo &info, const TaskOptions &taskOptions,
             int episodeLength) {
  namespace fs = std::filesystem;
  const size_t n = opt.seeds.size();
  const int total = omp_get_max_threads();
  int atOnce = opt.runsAtOnce > 0 ? opt.runsAtOnce : std::min(int(n), total);
  atOnce = std::max(1, std::min(atOnce, int(n)));
  const int perRun = std::max(1, total / atOnce);
  const long long memory = opt.maxMemory > 0 ? opt.maxMemory : availableMemoryBytes();
  // The folder of the seeds' folders and of their common plot: one --seeds run at a time.
  std::unique_ptr<RunLock> lock;
  try {
    if (opt.resume)
      requireRunFolder(opt.config.outDir); // before the lock would make it
    lock = std::make_unique<RunLock>(opt.config.outDir);
  } catch (const std::exception &e) {
    printError("dopa train", e.what());
    return 1;
  }
  std::string seedList;
  for (uint64_t s : opt.seeds)
    seedList += (seedList.empty() ? "" : " ") + std::to_string(s);
  printStderr("dopa train: " + opt.config.task + " task, " + opt.config.description + ", seeds " +
              seedList + ": " + std::to_string(atOnce) + " at once, " + std::to_string(perRun) +
              " thread" + (perRun > 1 ? "s" : "") + " each, batch " +
              std::to_string(opt.config.batch) + ", " + std::to_string(opt.config.iterations) +
              " iterations, engine " + opt.engine + "; folders " +
              (fs::path(opt.config.outDir) / "seed-<seed>").string() + "\n");
  if (opt.engine == "cuda")
    chooseSharedGpuLaunch(atOnce, "dopa train");
  SeedsProgress progress(n, opt.config.iterations);
  std::vector<SeedRun> runs(n);
  std::vector<int> codes(n, 0);
  std::atomic<size_t> next{0}; // the seeds are taken in order: [0, min(next, n)) were run
  std::atomic<bool> stop{false};
  std::mutex engineMutex; // engines are made one at a time (the on-demand compiler's cache)
  auto runSeed = [&](size_t i) {
    SeedRun &run = runs[i];
    TrainOptions o = opt;
    o.seeds.clear();
    o.config.seed = opt.seeds[i];
    o.config.outDir =
        (fs::path(opt.config.outDir) / ("seed-" + std::to_string(o.config.seed))).string();
    std::string ckpt = (fs::path(o.config.outDir) / "checkpoint.st").string();
    std::error_code ec;
    o.resume = opt.resume && fs::exists(ckpt, ec);
    int threads = perRun;
    if (int had = o.resume ? recordedThreads(ckpt) : 0; had > 0 && had != perRun) {
      threads = had;
      printStderr("dopa train: " + run.label + "its checkpoint was written with " +
                  std::to_string(had) + " thread" + (had > 1 ? "s" : "") +
                  ", which it keeps (the thread count sets the order of sums)\n");
    }
    omp_set_num_threads(threads); // this thread's OpenMP team for this seed
    o.config.threads = threads;
    run.started = [&progress, i](int64_t at) { progress.started(i, at); };
    run.progress = [&progress, i](const IterationLog &l) { progress.update(i, l); };
    EngineNetwork engine;
    {
      std::lock_guard<std::mutex> guard(engineMutex);
      EngineRequest request = engineRequest(o, episodeLength);
      request.maxMemory = std::max<long long>(1, memory / atOnce);
      engine = makeEngineNetwork(request, "dopa train");
    }
    if (!engine.net) { // (the same for every seed: the others are not tried)
      stop = true;
      return engine.exitCode;
    }
    return trainOn(*engine.net, o, info, taskOptions, &run);
  };
  auto worker = [&] {
    // Nothing may leave a thread (an exception would end the process without a word).
    for (size_t i; !stop && (i = next++) < n;) {
      runs[i].label = "seed " + std::to_string(opt.seeds[i]) + ": ";
      try {
        codes[i] = runSeed(i);
      } catch (const std::exception &e) {
        printError("dopa train", runs[i].label + e.what());
        codes[i] = 1;
      } catch (...) {
        printError("dopa train", runs[i].label + "an unknown error");
        codes[i] = 1;
      }
      progress.finished(i, runs[i].log.empty() ? 0 : runs[i].log.back().iteration + 1);
    }
  };
  std::vector<std::thread> threads;
  threads.reserve(size_t(atOnce));
  try {
    for (int t = 0; t < atOnce; ++t)
      threads.emplace_back(worker);
  } catch (const std::exception &e) { // the threads that started run every seed
    if (threads.empty()) {
      printError("dopa train", std::string("cannot start a thread for the seeds: ") + e.what());
      return 1;
    }
  }
  for (std::thread &t : threads)
    t.join();
  progress.close();
  return reportSeeds(opt, runs, codes, std::min<size_t>(next, n));
}

} // namespace

int tool::runTrain(const TrainOptions &opt, const TaskInfo &info, const TaskOptions &taskOptions) {
  // The episode length for the memory check, from a task of one episode; the real one after it.
  int episodeLength = info.make(1, taskOptions)->episodeLength();
  if (!opt.seeds.empty())
    return runSeeds(opt, info, taskOptions, episodeLength);
  EngineNetwork engine = makeEngineNetwork(engineRequest(opt, episodeLength), "dopa train");
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

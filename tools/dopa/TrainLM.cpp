//===- TrainLM.cpp - `dopa train lm`: a language model on Penn Treebank ----===//
//
// Loads and checks the corpus (Corpus.h), runs the model's network on the engine asked for
// (Engines.h), trains it with LanguageModelTrainer (truncated BPTT, SGD, perplexities) with a
// progress line (tokens/s, running perplexity, ETA), writes log.csv, epochs.csv, checkpoint.st
// (atomically; --resume continues bit-exactly, also mid-epoch) and perplexity.png, and prints the
// test perplexity. The run holds a lock on --out.
//
//===----------------------------------------------------------------------===//
#include "Cli.h"
#include "Console.h"
#include "Engines.h"
#include "RunConfig.h"
#include "TrainCommand.h"

#include "dopa/runtime/FileIO.h"
#include "dopa/runtime/SafeTensors.h"
#include "dopa/train/Corpus.h"
#include "dopa/train/LanguageModel.h"
#include "dopa/train/Trainer.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <unistd.h>
#include <utility>

using namespace dopa;
using namespace dopa::tool;
namespace fs = std::filesystem;

namespace {

std::string duration(double seconds) {
  long s = std::lround(seconds);
  return s >= 3600 ? format("%ldh%02ldm", s / 3600, (s / 60) % 60)
                   : format("%ldm%02lds", s / 60, s % 60);
}

/// One progress line, redrawn on a terminal, every 10% of an epoch otherwise.
class LMProgress {
public:
  LMProgress(const LMConfig &cfg, int64_t perEpoch, int64_t windowsLeft)
      : tty(isatty(2)), cfg(cfg), perEpoch(perEpoch), left(windowsLeft) {}
  /// `windows`: the windows of w's epoch (they vary with variable BPTT).
  void window(const WindowLog &w, int64_t windows) {
    perEpoch = std::max<int64_t>(windows, 1);
    seconds += w.seconds;
    tokens += double(cfg.batch) * cfg.bptt; // about: variable windows average near bptt
    lossSum += w.loss;
    ++count;
    --left;
    double rate = tokens / std::max(seconds, 1e-9);
    double eta = seconds / double(count) * double(std::max<int64_t>(left, 0));
    int width = 20;
    int filled = std::clamp(int(double(width) * double(w.window + 1) / double(perEpoch)), 0, width);
    std::string line = format(
        "[%s%s] epoch %d/%d window %lld/%lld | ppl %.1f (this run: %.1f) | %.0f tok/s | ETA %s",
        std::string(size_t(filled), '#').c_str(), std::string(size_t(width - filled), '.').c_str(),
        w.epoch, cfg.epochs, static_cast<long long>(w.window) + 1, static_cast<long long>(perEpoch),
        std::exp(w.loss), std::exp(lossSum / double(count)), rate, duration(eta).c_str());
    if (tty)
      printStderr("\r" + line + "   ");
    else if ((w.window + 1) % std::max<int64_t>(1, perEpoch / 10) == 0 || w.window + 1 == perEpoch)
      printStderr(line + "\n");
  }
  void epoch(const EpochLog &e) {
    printStderr(format("%sepoch %d: train perplexity %.2f, validation perplexity %.2f, lr %g, %s\n",
                       tty ? "\n" : "", e.epoch, e.trainPerplexity, e.validPerplexity, e.lr,
                       duration(e.seconds).c_str()));
  }
  /// Ends the progress line on a terminal, so that what follows starts on its own line.
  void end() {
    if (tty && count > 0)
      printStderr("\n");
  }

private:
  bool tty;
  const LMConfig &cfg;
  int64_t perEpoch, left;
  double seconds = 0, tokens = 0, lossSum = 0;
  int64_t count = 0;
};

void writeNamedParams(const std::string &path, Network &net) {
  const NetworkInfo &info = net.info();
  TensorFile out;
  for (size_t p = 0; p < info.params.size(); ++p)
    out.tensors.push_back(StoredTensor::fromFloat(info.params[p].name, info.params[p].shape,
                                                  net.params() + info.paramOffsets[p]));
  writeSafeTensors(path, out);
}

/// The numbers of `dopa train lm`, checked; "" when all are fine.
std::string lmNumbersProblem(const TrainArgs &a) {
  const LMArgs &lm = a.lm;
  if (lm.epochs < 1 || lm.bptt < 1 || lm.evalBatch < 1 || lm.testBatch < 1 ||
      a.opt.config.batch < 1)
    return "--epochs, --bptt, --batch, --eval-batch and --test-batch must be positive";
  if (lm.decayStart < 0 || lm.limitBatches < 0 || lm.stopAfter < 0 || lm.asgdAfter < 0 ||
      lm.asgdNonmono < 0)
    return "--decay-start, --limit-batches, --stop-after, --asgd-after and --asgd-nonmono must "
           "not be negative";
  for (auto [flag, v] : {std::pair{"--lr-decay", lm.lrDecay}, std::pair{"--l2", lm.l2},
                         std::pair{"--ar", lm.ar}, std::pair{"--tar", lm.tar}})
    if (!std::isfinite(v) || v < 0)
      return std::string(flag) + " must be a finite number >= 0 (got " + format("%g", v) + ")";
  for (const std::string &p :
       {positiveFinite("--init-scale", lm.initScale), positiveFinite("--lr", a.opt.config.adam.lr),
        positiveFinite("--alpha-grad-div", lm.alphaGradDiv),
        positiveFinite("--clip", a.opt.config.clipNorm),
        notNegative("--checkpoint-every", a.opt.config.checkpointEvery)})
    if (!p.empty())
      return p;
  return "";
}

} // namespace

namespace {

/// The trainer's configuration from the options.
LMConfig lmConfigOf(const TrainArgs &a, const std::string &givenSpec) {
  const TrainOptions &o = a.opt;
  const LMArgs &lm = a.lm;
  LMConfig cfg;
  cfg.batch = o.config.batch;
  cfg.bptt = lm.bptt;
  cfg.epochs = lm.epochs;
  cfg.lr = o.config.adam.lr;
  cfg.lrDecay = lm.lrDecay;
  cfg.decayStart = lm.decayStart;
  cfg.clipNorm = o.config.clipNorm;
  cfg.l2 = lm.l2;
  cfg.initScale = lm.initScale;
  cfg.limitBatches = lm.limitBatches;
  cfg.stopAfter = lm.stopAfter;
  cfg.evalBatch = lm.evalBatch;
  cfg.testBatch = lm.testBatch;
  cfg.seed = o.config.seed;
  cfg.checkpointEvery = o.config.checkpointEvery;
  cfg.outDir = o.config.outDir;
  cfg.model = lm.model;
  std::string dimsText;
  for (const std::string &d : o.dims)
    dimsText += " -D" + d;
  cfg.description = "lm " + (givenSpec.empty() ? lm.model : givenSpec) + dimsText +
                    tracePrecisionSuffix(isBf16Precision(a.tracePrecision));
  cfg.engine = o.engine;
  cfg.threads = omp_get_max_threads();
  cfg.lossMean = lm.loss == "mean";
  cfg.variableBptt = lm.bpttMode == "variable";
  cfg.ar = lm.ar;
  cfg.tar = lm.tar;
  cfg.alphaGradDiv = lm.alphaGradDiv;
  cfg.asgdAfter = lm.asgdAfter;
  cfg.asgdNonmono = lm.asgdNonmono;
  return cfg;
}

/// awd-lstm-lm's recipe as the reference's README runs it (shared/reference/backpropamine.md):
/// the defaults of the options not given.
void applyAwdRecipe(TrainArgs &a) {
  LMArgs &lm = a.lm;
  TrainOptions &o = a.opt;
  if (!lm.batchOpt->count())
    o.config.batch = 6;
  if (!a.lrOpt->count())
    a.lr = 30;
  if (!a.clipOpt->count())
    a.clip = 0.25;
  auto fill = [&](const char *name, auto &field, auto value) {
    if (!lm.given(name))
      field = std::move(value);
  };
  fill("--bptt", lm.bptt, 70);
  fill("--epochs", lm.epochs, 500);
  fill("--lr-decay", lm.lrDecay, 1.0);
  fill("--l2", lm.l2, 1.2e-6);
  fill("--loss", lm.loss, std::string("mean"));
  fill("--bptt-mode", lm.bpttMode, std::string("variable"));
  fill("--ar", lm.ar, 2.0);
  fill("--tar", lm.tar, 1.0);
  fill("--alpha-grad-div", lm.alphaGradDiv, 1149.0);
  fill("--asgd-after", lm.asgdAfter, 126); // --asgdtime 125 switches after the 126th epoch
}

bool isLargeModel(const std::string &model) {
  return model == "lstm" || model == "plastic_lstm" || model == "modplast_lstm" ||
         model == "modul_lstm";
}

/// The engine for the model: its compiled example, or the generic executor on the spec.
EngineNetwork lmEngine(const TrainOptions &o, const LMArgs &lm) {
  EngineRequest request;
  request.engine = o.engine;
  request.task = "lm";
  request.variant = lm.model;
  request.dims = o.dims;
  request.spec = o.spec;
  request.onDemand = o.specGiven;
  request.memoryBudget = o.memoryBudget;
  request.bpttSegment = o.bpttSegment;
  request.stageOrder = o.stageOrder;
  request.expectedSteps = lm.bpttMode == "variable" ? lm.bptt + 10 : lm.bptt; // the longest
  request.batch = o.config.batch; // this process's streams: its slice with ranks
  if (o.comm) {
    auto [first, last] = batchSlice(o.config.batch, o.comm->rank(), o.comm->size());
    request.batch = std::max(1, last - first);
    request.localRank = o.comm->localRank();
  }
  request.maxMemory = o.maxMemory;
  return makeEngineNetwork(request, "dopa train");
}

/// Start or resume, train, write the outputs; the exit code. With ranks (mpirun), every rank
/// trains its streams and reads the checkpoint it resumes; rank 0 holds the run folder and writes
/// and prints everything.
int trainOn(Network &net, const Corpus &corpus, const LMConfig &cfg, const TrainArgs &a) {
  Communicator *comm = a.opt.comm && a.opt.comm->size() > 1 ? a.opt.comm : nullptr;
  bool root = !comm || comm->rank() == 0;
  LanguageModelTrainer trainer(net, corpus, cfg, comm);
  if (a.opt.resume && root)
    requireRunFolder(cfg.outDir); // before the lock would make it
  std::unique_ptr<RunLock> lock;  // held until the run ends: a second run on --out stops here
  if (root)
    lock = std::make_unique<RunLock>(cfg.outDir);
  std::string ckpt = (fs::path(cfg.outDir) / "checkpoint.st").string();
  if (a.opt.resume) {
    trainer.resume(ckpt);
  } else {
    if (root && fs::exists(ckpt))
      throw DataError(
          ckpt + ": a checkpoint exists; pass --resume to continue it, or choose another --out");
    trainer.initFresh();
    if (root && !a.lm.saveInit.empty())
      writeNamedParams(a.lm.saveInit, net);
  }
  if (comm) {
    if (std::string differs = comm->firstDifference(trainer.stateDigest()); !differs.empty()) {
      printError("dopa train", "the ranks were not started alike: " + differs);
      return 2;
    }
    if (!root)
      return trainer.run(), 0;
  }
  int64_t perEpoch = trainer.windowsPerEpoch();
  int64_t done = int64_t(trainer.windowLog().size());
  if (std::string note = writeRunConfig(cfg.outDir, a.opt.commandLine, trainer.settings(), done);
      !note.empty())
    printNote("dopa train", note);
  printStderr(format("dopa train: lm, %s (%zu parameters), vocabulary %d, %zu training tokens, "
                     "batch %d, bptt %d, %lld windows per epoch, %d epochs, engine %s%s\n",
                     net.info().name.c_str(), net.info().numLearned(), corpus.vocab.size(),
                     corpus.train.size(), cfg.batch, cfg.bptt, static_cast<long long>(perEpoch),
                     cfg.epochs, cfg.engine.c_str(),
                     comm ? (", " + std::to_string(comm->size()) + " ranks").c_str() : ""));
  int64_t windowsLeft = perEpoch * cfg.epochs - done;
  if (cfg.stopAfter > 0) // the ETA is for what this run will do
    windowsLeft = std::min(windowsLeft, cfg.stopAfter);
  LMProgress progress(cfg, perEpoch, windowsLeft);
  double test = 0;
  try {
    test = trainer.run([&](const WindowLog &w, int64_t windows) { progress.window(w, windows); },
                       [&](const EpochLog &e) { progress.epoch(e); });
  } catch (const std::runtime_error &e) {
    printError("dopa train", std::string(e.what()) + "; " +
                                 (fs::exists(ckpt) ? "the last good checkpoint is kept at " + ckpt
                                                   : std::string("no checkpoint was written")));
    return 1;
  }
  if (trainer.stoppedEarly()) {
    progress.end();
    printStderr(format("dopa train: stopped after %lld windows (--stop-after) at epoch %d; the "
                       "checkpoint %s continues with --resume\n",
                       static_cast<long long>(cfg.stopAfter), trainer.epochNow(), ckpt.c_str()));
    return 0;
  }
  // The model the test scored: the average of the iterates once averaged SGD has started.
  if (trainer.loadAverage())
    printStderr("dopa train: the parameters are now the average of the iterates (averaged SGD)\n");
  std::string png = (fs::path(cfg.outDir) / "perplexity.png").string();
  if (plotPerplexity(trainer.epochLog(), png, "PTB: " + net.info().name))
    printStderr("dopa train: perplexity curve " + png + "\n");
  const auto &epochs = trainer.epochLog();
  printStdout(format("validation perplexity %.2f, test perplexity %.2f\n",
                     epochs.empty() ? 0.0 : epochs.back().validPerplexity, test));
  // Last, after the results are out: a write that fails (the folder went away) loses nothing else.
  if (!a.lm.saveParams.empty())
    writeNamedParams(a.lm.saveParams, net);
  return 0;
}

/// --save-init and --save-params: writable, and none of the run's own files, the corpus's or the
/// spec (a parameters file written over them would lose them); "" when they are fine.
std::string saveFilesProblem(const TrainArgs &a) {
  const std::string &out = a.opt.config.outDir;
  std::vector<std::pair<std::string, std::string>> taken; // path, what it is
  for (const char *name :
       {"checkpoint.st", "log.csv", "epochs.csv", "config.json", "perplexity.png", ".lock"})
    taken.emplace_back((fs::path(out) / name).string(), std::string("the run's ") + name);
  for (const char *name : {"ptb.train.txt", "ptb.valid.txt", "ptb.test.txt", "MD5SUMS"})
    taken.emplace_back((fs::path(a.lm.data) / name).string(), std::string("the corpus's ") + name);
  if (!a.opt.spec.path.empty())
    taken.emplace_back(a.opt.spec.path, "the spec");
  for (auto [flag, path] :
       {std::pair<const char *, const std::string &>{"--save-init", a.lm.saveInit},
        {"--save-params", a.lm.saveParams}}) {
    if (path.empty())
      continue;
    for (const auto &[file, what] : taken)
      if (isSameFile(path, file)) {
        std::string message = flag;
        message += " names ";
        message += what;
        message += " (" + file + ")";
        return message;
      }
    if (std::string problem = unwritableOutput(flag, path, out); !problem.empty())
      return problem;
  }
  if (isSameFile(a.lm.saveInit, a.lm.saveParams))
    return "--save-init and --save-params name the same file (" + a.lm.saveParams + ")";
  return "";
}

} // namespace

int tool::trainLanguageModel(TrainArgs &a) {
  TrainOptions &o = a.opt;
  LMArgs &lm = a.lm;
  if (o.config.outDir.empty())
    return usage("--out DIR is required");
  if (lm.data.empty())
    return usage("dopa train lm needs --data DIR (the PTB split, e.g. ../shared/data/ptb)");
  bool awd =
      lm.recipe == "awd" || (lm.recipe.empty() && o.spec.path.empty() && isLargeModel(lm.model));
  if (awd)
    applyAwdRecipe(a);
  if (!a.lm.batchOpt->count())
    o.config.batch = awd ? 6 : 20;
  if (!a.lm.checkpointOpt->count())
    o.config.checkpointEvery = 500;
  o.config.adam.lr = a.lrOpt->count() || awd ? a.lr : 1.0;
  o.config.clipNorm = a.clipOpt->count() || awd ? a.clip : 5.0;
  if (!setThreads(a.threads))
    return usage(threadsMessage);
  if (std::string problem = lmNumbersProblem(a); !problem.empty())
    return usage(problem);
  if (std::string problem = saveFilesProblem(a); !problem.empty())
    return usage(problem);
  if (!isTrainingEngine(o.engine))
    return usage("--engine is generated, generic or cuda");
  o.spec.traceBf16 = isBf16Precision(a.tracePrecision);
  if (std::string problem = tracePrecisionProblem(o.spec.traceBf16, o.engine); !problem.empty())
    return usage(problem);
  if (o.engine == "cuda" && !o.spec.path.empty())
    return usage("--spec runs on --engine generated (compiled on demand into the cache) or "
                 "generic; the cuda engine runs the examples compiled at build time");
  o.specGiven = !o.spec.path.empty();
  Corpus corpus;
  try {
    corpus = loadPtb(lm.data, !lm.noVerify);
  } catch (const std::exception &e) {
    printError("dopa train", e.what());
    return 1;
  }
  std::string givenSpec = o.spec.path;
  if (o.spec.path.empty()) {
    try {
      o.spec.path = exampleSpecPath("lm", lm.model);
      o.spec.includeDirs = {exampleDir("lm")};
    } catch (const std::exception &e) {
      if (o.engine == "generic") {
        printError("dopa train", e.what());
        return 1;
      }
    }
  }
  o.spec.dimOverrides = o.dims;
  EngineNetwork engine = lmEngine(o, lm);
  if (!engine.net)
    return engine.exitCode;
  try {
    return trainOn(*engine.net, corpus, lmConfigOf(a, givenSpec), a);
  } catch (const std::exception &e) {
    printError("dopa train", e.what());
    return 1;
  }
}

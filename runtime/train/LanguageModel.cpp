//===- LanguageModel.cpp - Word-level language modelling with truncated BPTT ===//
//
// Implements LanguageModelTrainer (see LanguageModel.h): the windows of an epoch, the summed
// cross-entropy and its gradient with respect to the logits, clipping and SGD, the perplexities,
// the checkpoints with the carried state, and the perplexity plot.
//
//===----------------------------------------------------------------------===//
#include "dopa/train/LanguageModel.h"

#include "dopa/runtime/FileIO.h"
#include "dopa/train/Fnv1a.h"
#include "dopa/train/Optim.h"
#include "dopa/train/Plot.h"
#include "dopa/train/Task.h"
#include "dopa/train/Trainer.h"

#include <Eigen/Core>
#include <omp.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <tuple>

using namespace dopa;
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double secondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

/// Cross-entropy of each of the B logits rows against its target, summed over the rows, and (when
/// `grad` is not null) (softmax - onehot) / divisor: d(the sum / divisor)/d logits (divisor: the
/// whole batch, of which these rows may be a rank's slice). `grad` may be `logits` (in place).
/// The exponentials in float with Eigen's vectorized exp, their sum in double.
double crossEntropy(const float *logits, const int32_t *targets, int B, int V, float *grad,
                    int divisor) {
  double total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static) if (int64_t(B) * V > 65536)
  for (int b = 0; b < B; ++b) {
    Eigen::Map<const Eigen::ArrayXf> row(logits + int64_t(b) * V, V);
    const float top = row.maxCoeff(), target = row[targets[b]];
    double sum = 0;
    if (grad) {
      Eigen::Map<Eigen::ArrayXf> g(grad + int64_t(b) * V, V);
      g = (row - top).exp();
      sum = g.cast<double>().sum();
      g *= float(1.0 / (sum * divisor));
      g[targets[b]] -= 1.f / float(divisor);
    } else {
      sum = (row - top).exp().cast<double>().sum();
    }
    total += std::log(sum) + double(top) - double(target);
  }
  return total;
}

/// What must agree between a checkpoint and the run that resumes it.
std::map<std::string, std::string> fingerprint(const LMConfig &c, const NetworkInfo &info,
                                               const Corpus &corpus) {
  return {{"model", c.model},
          {"description", c.description},
          {"network", info.name},
          {"num_params", std::to_string(info.numParams)},
          {"vocab", std::to_string(corpus.vocab.size())},
          {"train_tokens", std::to_string(corpus.train.size())},
          {"valid_tokens", std::to_string(corpus.valid.size())},
          {"test_tokens", std::to_string(corpus.test.size())},
          {"batch", std::to_string(c.batch)},
          {"bptt", std::to_string(c.bptt)},
          {"lr", settingText(c.lr)},
          {"lr_decay", settingText(c.lrDecay)},
          {"decay_start", std::to_string(c.decayStart)},
          {"clip_norm", settingText(c.clipNorm)},
          {"l2", settingText(c.l2)},
          {"init_scale", settingText(c.initScale)},
          {"limit_batches", std::to_string(c.limitBatches)},
          {"eval_batch", std::to_string(c.evalBatch)},
          {"test_batch", std::to_string(c.testBatch)},
          {"seed", std::to_string(c.seed)},
          {"threads", std::to_string(c.threads)},
          {"engine", c.engine},
          {"loss", c.lossMean ? "mean" : "sum"},
          {"bptt_mode", c.variableBptt ? "variable" : "fixed"},
          {"ar", settingText(c.ar)},
          {"tar", settingText(c.tar)},
          {"alpha_grad_div", settingText(c.alphaGradDiv)},
          {"asgd_after", std::to_string(c.asgdAfter)},
          {"asgd_nonmono", std::to_string(c.asgdNonmono)}};
}

/// A generator for one draw of a run (salt: which; epoch and index: where), the same in a resumed
/// run and on every rank, with nothing to checkpoint.
Rng drawGenerator(uint64_t seed, uint64_t salt, int epoch, int64_t index) {
  return Rng(seed * 0x9E3779B97F4A7C15ULL + uint64_t(epoch) * 0xD1B54A32D192ED03ULL +
             uint64_t(index) + salt);
}

/// Settings added after the first LM checkpoints: one written before them ran with the default.
bool isRecipeSetting(const std::string &key) {
  return key == "loss" || key == "bptt_mode" || key == "ar" || key == "tar" ||
         key == "alpha_grad_div" || key == "asgd_after" || key == "asgd_nonmono";
}

} // namespace

LanguageModelTrainer::LanguageModelTrainer(Network &net, const Corpus &corpus, LMConfig config,
                                           Communicator *comm)
    : net(net), corpus(corpus), cfg(std::move(config)),
      comm(comm && comm->size() > 1 ? comm : nullptr), masks(net.info()) {
  if (cfg.threads == 0)
    cfg.threads = omp_get_max_threads();
  const NetworkInfo &info = net.info();
  // One int input (the token); any other input must be a dropout mask (drawn here).
  input = -1;
  for (size_t k = 0; k < info.inputs.size(); ++k) {
    if (info.inputs[k].isMask())
      continue;
    if (input >= 0 || !info.inputs[k].isInt || info.inputs[k].numel() != 1)
      throw std::invalid_argument("network '" + info.name +
                                  "' must take one int input (a token) for language modelling" +
                                  (info.inputs[k].isInt ? ""
                                                        : "; '" + info.inputs[k].name +
                                                              "' is neither a token nor a "
                                                              "mask"));
    input = int(k);
  }
  if (input < 0)
    throw std::invalid_argument("network '" + info.name +
                                "' must take one int input (a token) for language modelling");
  stepInputs.assign(info.inputs.size(), nullptr);
  for (size_t p = 0; p < info.params.size(); ++p) {
    const std::string &name = info.params[p].name;
    if (!info.params[p].isMask())
      learned.emplace_back(info.paramOffsets[p], size_t(info.params[p].numel()));
    if (name == "alpha" || (name.size() > 6 && name.compare(name.size() - 6, 6, ".alpha") == 0))
      alphas.emplace_back(info.paramOffsets[p], size_t(info.params[p].numel()));
  }
  for (auto [coef, out, flag, which] : {std::tuple{cfg.ar, &arOut, "--ar", "ar_h"},
                                        std::tuple{cfg.tar, &tarOut, "--tar", "tar_h"}}) {
    if (!(coef >= 0) || !std::isfinite(coef))
      throw std::invalid_argument(std::string(flag) + " must be a finite number >= 0");
    if (coef == 0)
      continue;
    *out = info.findOutput(which);
    if (*out < 0)
      throw std::invalid_argument(std::string(flag) + " regularizes the output '" + which +
                                  "', which network '" + info.name + "' does not have");
  }
  if (arOut >= 0 && tarOut >= 0 &&
      info.outputs[size_t(arOut)].numel() != info.outputs[size_t(tarOut)].numel())
    throw std::invalid_argument("outputs ar_h and tar_h of network '" + info.name +
                                "' must have the same size");
  if (!(cfg.alphaGradDiv > 0) || !std::isfinite(cfg.alphaGradDiv))
    throw std::invalid_argument("--alpha-grad-div must be a finite number > 0");
  logitsOut = info.findOutput("logits");
  vocab = corpus.vocab.size();
  if (logitsOut < 0 || info.outputs[size_t(logitsOut)].numel() != vocab)
    throw std::invalid_argument(
        "network '" + info.name + "' needs an output 'logits' [" + std::to_string(vocab) +
        "], the vocabulary of " + corpus.dir +
        (logitsOut < 0 ? ""
                       : " (it has [" + std::to_string(info.outputs[size_t(logitsOut)].numel()) +
                             "]: pass -D V=" + std::to_string(vocab) + ")"));
  if (cfg.batch < 1 || cfg.bptt < 1 || cfg.epochs < 1 || cfg.evalBatch < 1 || cfg.testBatch < 1)
    throw std::invalid_argument("language model: batch, bptt, epochs and evaluation batches must "
                                "be positive");
  std::tie(first, last) = this->comm ? batchSlice(cfg.batch, this->comm->rank(), this->comm->size())
                                     : std::pair{0, cfg.batch};
  if (first == last)
    throw std::invalid_argument("language model: batch " + std::to_string(cfg.batch) + " across " +
                                std::to_string(this->comm->size()) +
                                " ranks leaves a rank without a stream; use at most " +
                                std::to_string(cfg.batch) + " ranks");
  if (int64_t(corpus.train.size()) / cfg.batch < 2)
    throw std::invalid_argument(corpus.dir +
                                "/ptb.train.txt: " + std::to_string(corpus.train.size()) +
                                " tokens are too few for " + "--batch " +
                                std::to_string(cfg.batch) + " (at least two per stream)");
  trainData = batchify(corpus.train, cfg.batch);
  trainRows = int64_t(trainData.size()) / cfg.batch;
  // The evaluations' batches too, now rather than after a whole epoch of training.
  for (auto [tokens, batch, what, file] :
       {std::tuple{&corpus.valid, cfg.evalBatch, "--eval-batch", "ptb.valid.txt"},
        std::tuple{&corpus.test, cfg.testBatch, "--test-batch", "ptb.test.txt"}})
    if (int64_t(tokens->size()) / batch < 2)
      throw std::invalid_argument(corpus.dir + "/" + file + ": " + std::to_string(tokens->size()) +
                                  " tokens are too few for " + what + " " + std::to_string(batch) +
                                  " (at least two per stream)");
}

double LanguageModelTrainer::learningRate(int e) const {
  return cfg.lr * std::pow(cfg.lrDecay, double(std::max(0, e - cfg.decayStart)));
}

std::vector<Window> LanguageModelTrainer::epochWindows(int e) const {
  std::vector<Window> all;
  if (cfg.variableBptt) { // the lengths of epoch e, whoever draws them (resumes, ranks)
    Rng rng = drawGenerator(cfg.seed, 0x6270747400000000ULL, e, 0);
    all = variableBpttWindows(trainRows, cfg.bptt, rng);
  } else {
    all = bpttWindows(trainRows, cfg.bptt);
  }
  if (cfg.limitBatches > 0 && int64_t(all.size()) > cfg.limitBatches)
    all.resize(size_t(cfg.limitBatches));
  return all;
}

int64_t LanguageModelTrainer::windowsPerEpoch() const {
  return int64_t(epochWindows(epoch).size());
}

void LanguageModelTrainer::initFresh() {
  const NetworkInfo &info = net.info();
  initParams(info, net.params(), cfg.seed);
  // uniform(-0.1, 0.1) * s/0.1 is uniform(-s, s): the same draws, rescaled.
  for (size_t p = 0; p < info.params.size(); ++p) {
    const InitSpec &init = info.params[p].init;
    if (init.kind != InitSpec::Uniform || init.a != -0.1 || init.b != 0.1)
      continue;
    float scale = float(cfg.initScale / 0.1);
    float *v = net.params() + info.paramOffsets[p];
    for (int64_t i = 0; i < info.params[p].numel(); ++i)
      v[i] *= scale;
  }
  epoch = 1;
  nextWindow = 0;
  average = IterateAverage();
  epochLossSum = 0;
  epochTokens = 0;
  epochSeconds = 0;
  windows.clear();
  epochs.clear();
}

WindowLog LanguageModelTrainer::trainWindow(const std::vector<int32_t> &data, const Window &w,
                                            int e, int64_t index, double lr) {
  auto start = Clock::now();
  // B streams in all, `mine` of them on this rank, from `first`.
  const int B = cfg.batch, mine = last - first, T = w.length;
  const NetworkInfo &info = net.info();
  if (!masks.empty()) {
    // This window's masks, the same whoever draws them (a resumed run, each rank its slice).
    Rng rng = drawGenerator(cfg.seed, 0x6D61736B00000000ULL, e, index);
    masks.draw(rng, B, first, mine, net.params());
    if (masks.hasShared()) // shared masks are parameters: an engine with its own copy takes them
      net.truncate();      // (nothing is recorded yet)
  }
  // Summed over the steps (Zaremba) or their mean (awd-lstm-lm); the batch's mean either way.
  const int divisor = cfg.lossMean ? B * T : B;
  double lossSum = forwardWindow(data, B, first, mine, w.start, T, true, divisor) / B;
  if (comm)
    comm->sum(&lossSum, 1);
  double loss = lossSum / T; // the cross-entropy per token (AR/TAR are not in it)
  if (!std::isfinite(loss))
    throw std::runtime_error("epoch " + std::to_string(e) + ", window " + std::to_string(index) +
                             ": the loss is not finite");
  std::vector<std::vector<const float *>> grads(size_t(T),
                                                std::vector<const float *>(info.outputs.size()));
  std::vector<const float *const *> gradPtr;
  gradPtr.reserve(size_t(T));
  penaltyGradients(T, grads);
  for (int t = 0; t < T; ++t) {
    grads[size_t(t)][size_t(logitsOut)] = windowOutput(t, logitsOut);
    gradPtr.push_back(grads[size_t(t)].data());
  }
  net.zeroGrads();
  net.backward(gradPtr.data());
  size_t n = info.numParams;
  if (comm) // the whole batch's gradient, the same on every rank
    comm->sum(net.grads(), int64_t(n));
  for (auto [offset, count] : alphas) // awd-lstm-lm's agdiv, before the clip
    for (size_t i = 0; i < count; ++i)
      net.grads()[offset + i] /= float(cfg.alphaGradDiv);
  double norm = clipGradNorm(net.grads(), n, cfg.clipNorm);
  if (!std::isfinite(norm))
    throw std::runtime_error("epoch " + std::to_string(e) + ", window " + std::to_string(index) +
                             ": the gradient is not finite");
  float *params = net.params();
  const float *gradBuf = net.grads();
  const float rate = float(lr), decay = float(cfg.l2);
  for (auto [offset, count] : learned) { // masks are not learned (nor decayed)
    float *p = params + offset;
    const float *g = gradBuf + offset;
    for (size_t i = 0; i < count; ++i)
      p[i] -= rate * (g[i] + decay * p[i]);
  }
  if (average.active())
    average.add(params);
  // Carry the state into the next window without its history; after the update, since an engine
  // may take its copy of the parameters here (the CUDA one uploads them).
  net.truncate();
  return {e, index, loss, lr, norm, secondsSince(start)};
}

void LanguageModelTrainer::penaltyGradients(int steps,
                                            std::vector<std::vector<const float *>> &grads) {
  if (arOut < 0 && tarOut < 0)
    return;
  const NetworkInfo &info = net.info();
  int64_t width = info.outputs[size_t(arOut >= 0 ? arOut : tarOut)].numel();
  size_t n = size_t(last - first) * size_t(width);
  std::vector<const float *> a, h;
  std::vector<float *> dA, dH;
  if (penaltyGrads.size() < size_t(steps))
    penaltyGrads.resize(size_t(steps));
  for (int t = 0; t < steps; ++t) {
    std::vector<float> &g = penaltyGrads[size_t(t)];
    g.assign(2 * n, 0.f);
    if (arOut >= 0) {
      a.push_back(windowOutput(t, arOut));
      dA.push_back(g.data());
      grads[size_t(t)][size_t(arOut)] = g.data();
    }
    if (tarOut >= 0) {
      h.push_back(windowOutput(t, tarOut));
      dH.push_back(g.data() + n);
      grads[size_t(t)][size_t(tarOut)] = g.data() + n;
    }
  }
  // The penalties' weight against the cross-entropy: awd-lstm-lm adds them to the mean loss.
  double scale = cfg.lossMean ? 1.0 : double(steps);
  activationPenalties(a, h, last - first, cfg.batch, width, cfg.ar, cfg.tar, scale, dA, dH);
}

const float *const *LanguageModelTrainer::inputsWith(const float *tokens) {
  for (size_t k = 0; k < stepInputs.size(); ++k)
    stepInputs[k] = int(k) == input ? tokens : masks.input(int(k));
  return stepInputs.data();
}

double LanguageModelTrainer::forwardWindow(const std::vector<int32_t> &data, int batch, int from,
                                           int n, int64_t start, int steps, bool withGrad,
                                           int divisor) {
  const NetworkInfo &info = net.info();
  const size_t numOutputs = info.outputs.size(), numInputs = info.inputs.size();
  windowTokens.resize(size_t(steps) * size_t(n));
  windowOutputs.resize(numOutputs);
  for (size_t k = 0; k < numOutputs; ++k)
    windowOutputs[k].resize(size_t(steps) * size_t(n) * size_t(info.outputs[k].numel()));
  windowInputPtrs.resize(size_t(steps) * numInputs);
  windowOutputPtrs.resize(size_t(steps) * numOutputs);
  windowInputs.resize(size_t(steps));
  windowOutputsAt.resize(size_t(steps));
  for (int t = 0; t < steps; ++t) {
    const int32_t *row = data.data() + (start + t) * batch;
    float *tok = windowTokens.data() + size_t(t) * size_t(n);
    for (int b = 0; b < n; ++b)
      tok[b] = float(row[from + b]);
    const float *const *in = inputsWith(tok);
    const float **stepIn = windowInputPtrs.data() + size_t(t) * numInputs;
    float **stepOut = windowOutputPtrs.data() + size_t(t) * numOutputs;
    std::copy_n(in, numInputs, stepIn);
    for (size_t k = 0; k < numOutputs; ++k)
      stepOut[k] =
          windowOutputs[k].data() + size_t(t) * size_t(n) * size_t(info.outputs[k].numel());
    windowInputs[size_t(t)] = stepIn;
    windowOutputsAt[size_t(t)] = stepOut;
  }
  net.forward(steps, windowInputs.data(), windowOutputsAt.data());
  double sum = 0;
  for (int t = 0; t < steps; ++t) {
    float *logits = windowOutput(t, logitsOut);
    sum += crossEntropy(logits, data.data() + (start + t + 1) * batch + from, n, vocab,
                        withGrad ? logits : nullptr, divisor);
  }
  return sum;
}

double LanguageModelTrainer::evaluate(const std::vector<int32_t> &tokens, int batch) {
  if (average.count() == 0) // not averaging, or no update since it started (the last epoch's)
    return perplexity(tokens, batch);
  // ASGD: the average of the iterates, then the iterate back (awd-lstm-lm swaps them likewise).
  size_t n = net.info().numParams;
  std::vector<float> iterate(net.params(), net.params() + n);
  std::copy(average.values().begin(), average.values().end(), net.params());
  double result = perplexity(tokens, batch);
  std::copy(iterate.begin(), iterate.end(), net.params());
  return result;
}

bool LanguageModelTrainer::loadAverage() {
  if (average.count() == 0)
    return false;
  std::copy(average.values().begin(), average.values().end(), net.params());
  return true;
}

void LanguageModelTrainer::maybeStartAveraging() {
  if (average.active() || epochs.empty())
    return;
  bool due = cfg.asgdAfter > 0 && epochs.back().epoch >= cfg.asgdAfter;
  // awd-lstm-lm's non-monotone trigger: worse than the best of the epochs before the last n.
  size_t before = epochs.size() - 1;
  if (cfg.asgdNonmono > 0 && before > size_t(cfg.asgdNonmono)) {
    double best = epochs.front().validPerplexity;
    for (size_t i = 0; i < before - size_t(cfg.asgdNonmono); ++i)
      best = std::min(best, epochs[i].validPerplexity);
    due = due || epochs.back().validPerplexity > best;
  }
  if (due)
    average.start(net.info().numParams);
}

double LanguageModelTrainer::perplexity(const std::vector<int32_t> &tokens, int batch) {
  std::vector<int32_t> data = batchify(tokens, batch);
  int64_t rows = int64_t(data.size()) / batch;
  std::vector<Window> all = bpttWindows(rows, cfg.bptt);
  if (cfg.limitBatches > 0 && int64_t(all.size()) > cfg.limitBatches)
    all.resize(size_t(cfg.limitBatches));
  // With ranks, each evaluates its slice of the streams (possibly none) and the sums are added.
  auto [from, to] = comm ? batchSlice(batch, comm->rank(), comm->size()) : std::pair{0, batch};
  int n = to - from;
  double sums[2] = {0, 0};                    // the summed cross-entropy, the tokens
  masks.setOff(std::max(n, 0), net.params()); // dropout off (every rank: the same parameters)
  if (n > 0) {
    net.beginEpisode(n);
    for (const Window &w : all) {
      sums[0] += forwardWindow(data, batch, from, n, w.start, w.length, false, n);
      sums[1] += double(n) * w.length;
      net.truncate(); // no gradient: forget the record, keep the state
    }
  }
  if (comm)
    comm->sum(sums, 2);
  return std::exp(sums[0] / std::max(sums[1], 1.0));
}

std::map<std::string, std::string> LanguageModelTrainer::settings() const {
  return fingerprint(cfg, net.info(), corpus);
}

double LanguageModelTrainer::run(const LMProgressFn &progress, const LMEpochFn &epochDone) {
  // Every rank takes the checkpoints (they gather the state); rank 0 writes them.
  std::string ckpt = cfg.outDir.empty() ? "" : (fs::path(cfg.outDir) / "checkpoint.st").string();
  if (writes()) {
    fs::create_directories(cfg.outDir);
    writeLogs(); // the checkpoint's rows: what a killed run appended after it is dropped
  }
  bool stateReady = nextWindow > 0; // resume() restored the carried state
  int64_t trained = 0;
  stopped = false;
  while (epoch <= cfg.epochs) {
    std::vector<Window> all = epochWindows(epoch);
    int64_t perEpoch = int64_t(all.size());
    double epochLr = learningRate(epoch);
    if (!stateReady)
      net.beginEpisode(last - first);
    stateReady = false;
    for (; nextWindow < perEpoch; ++nextWindow) {
      if (cfg.stopAfter > 0 && trained == cfg.stopAfter) { // --stop-after: checkpoint and stop
        if (!ckpt.empty())
          saveCheckpoint(ckpt);
        stopped = true;
        return std::nan("");
      }
      ++trained;
      const Window &w = all[size_t(nextWindow)];
      // Variable BPTT: the rate scaled by the window's length (awd-lstm-lm's seq_len / bptt).
      double lr = cfg.variableBptt ? epochLr * w.length / cfg.bptt : epochLr;
      WindowLog log = trainWindow(trainData, w, epoch, nextWindow, lr);
      windows.push_back(log);
      if (writes())
        appendLog(log);
      epochLossSum += log.loss * all[size_t(nextWindow)].length;
      epochTokens += all[size_t(nextWindow)].length;
      epochSeconds += log.seconds;
      if (progress)
        progress(log, perEpoch);
      bool due = cfg.checkpointEvery > 0 && (nextWindow + 1) % cfg.checkpointEvery == 0 &&
                 nextWindow + 1 < perEpoch;
      if (due && !ckpt.empty()) {
        ++nextWindow; // the checkpoint continues after this window
        saveCheckpoint(ckpt);
        --nextWindow;
      }
    }
    auto evalStart = Clock::now();
    double valid = evaluate(corpus.valid, cfg.evalBatch);
    EpochLog done{epoch, std::exp(epochLossSum / double(std::max<int64_t>(epochTokens, 1))), valid,
                  epochLr, epochSeconds + secondsSince(evalStart)};
    epochs.push_back(done);
    maybeStartAveraging(); // from the next window on
    if (epochDone)
      epochDone(done);
    ++epoch;
    nextWindow = 0;
    epochLossSum = 0;
    epochTokens = 0;
    epochSeconds = 0;
    if (!ckpt.empty()) {
      saveCheckpoint(ckpt);
      if (writes())
        writeEpochLog(); // log.csv is complete already: it keeps growing, for tail -f
    }
  }
  testPerplexity = evaluate(corpus.test, cfg.testBatch);
  return testPerplexity;
}

namespace {
void logRow(std::ostream &os, const WindowLog &l) {
  os << l.epoch << "," << l.window << "," << l.loss << "," << l.lr << "," << l.gradNorm << ","
     << l.seconds << "\n";
}
} // namespace

void LanguageModelTrainer::appendLog(const WindowLog &log) const {
  std::ofstream out(fs::path(cfg.outDir) / "log.csv", std::ios::app);
  out.precision(9);
  logRow(out, log);
  if (!out.flush())
    throw std::runtime_error(cfg.outDir + "/log.csv: cannot append");
}

void LanguageModelTrainer::writeLogs() const {
  std::ostringstream w;
  w << "epoch,batch,loss,lr,grad_norm,seconds\n";
  w.precision(9);
  for (const WindowLog &l : windows)
    logRow(w, l);
  writeFileAtomically((fs::path(cfg.outDir) / "log.csv").string(), w.str());
  writeEpochLog();
}

void LanguageModelTrainer::writeEpochLog() const {
  std::ostringstream e;
  e << "epoch,train_perplexity,valid_perplexity,lr,seconds\n";
  e.precision(9);
  for (const EpochLog &l : epochs)
    e << l.epoch << "," << l.trainPerplexity << "," << l.validPerplexity << "," << l.lr << ","
      << l.seconds << "\n";
  writeFileAtomically((fs::path(cfg.outDir) / "epochs.csv").string(), e.str());
}

void LanguageModelTrainer::saveCheckpoint(const std::string &path) const {
  const NetworkInfo &info = net.info();
  TensorFile f;
  // Shared masks as evaluated (ones), not the last window's draw: the checkpoint's parameters are
  // the model (dopa export, Python); training redraws them.
  std::vector<float> params(net.params(), net.params() + info.numParams);
  masks.setSharedOff(params.data());
  f.tensors.push_back(StoredTensor::fromFloat("params", {int64_t(info.numParams)}, params.data()));
  if (nextWindow > 0) // mid-epoch: the state carried into the next window, of every stream
    for (size_t s = 0; s < info.states.size(); ++s) {
      std::vector<float> all = allStreams(int(s));
      f.tensors.push_back(StoredTensor::fromFloat("state." + info.states[s].name,
                                                  {cfg.batch, info.states[s].numel()}, all.data()));
    }
  if (!writes())
    return;
  std::vector<double> w;
  for (const WindowLog &l : windows)
    w.insert(w.end(), {double(l.epoch), double(l.window), l.loss, l.lr, l.gradNorm, l.seconds});
  f.tensors.push_back(
      StoredTensor::fromDouble("log.windows", {int64_t(windows.size()), 6}, w.data()));
  std::vector<double> e;
  for (const EpochLog &l : epochs)
    e.insert(e.end(), {double(l.epoch), l.trainPerplexity, l.validPerplexity, l.lr, l.seconds});
  f.tensors.push_back(
      StoredTensor::fromDouble("log.epochs", {int64_t(epochs.size()), 5}, e.data()));
  f.metadata = fingerprint(cfg, info, corpus);
  f.metadata["param_layout"] = paramLayoutText(info);
  f.metadata["format"] = "dopa-lm-checkpoint";
  f.metadata["version"] = std::to_string(checkpointVersion);
  f.metadata["epoch"] = std::to_string(epoch);
  f.metadata["next_window"] = std::to_string(nextWindow);
  f.metadata["epoch_loss_sum"] = settingText(epochLossSum);
  f.metadata["epoch_tokens"] = std::to_string(epochTokens);
  f.metadata["epoch_seconds"] = settingText(epochSeconds);
  f.metadata["asgd_steps"] = std::to_string(average.active() ? average.count() : -1);
  if (average.active())
    f.tensors.push_back(StoredTensor::fromDouble("asgd.sum", {int64_t(average.sums().size())},
                                                 average.sums().data()));
  f.metadata["checksum"] = Trainer::checkpointChecksum(f);
  writeSafeTensors(path, f);
}

void LanguageModelTrainer::checkFingerprint(const TensorFile &f, const std::string &path) const {
  std::map<std::string, std::string> defaults = fingerprint(LMConfig{}, net.info(), corpus);
  for (const auto &[key, value] : fingerprint(cfg, net.info(), corpus)) {
    auto it = f.metadata.find(key);
    std::string msg = path;
    msg += ": __metadata__.";
    msg += key;
    if (it == f.metadata.end() && !isRecipeSetting(key))
      throw DataError(msg + ": missing (not a dopa LM checkpoint?)");
    const std::string &saved = it == f.metadata.end() ? defaults[key] : it->second;
    if (saved != value) {
      msg += ": the checkpoint has '";
      msg += saved;
      msg += "' but this run has '";
      msg += value;
      msg += "'";
      if (isRecipeSetting(key)) {
        msg += "; the large models take --recipe awd by default: pass --recipe zaremba or --";
        msg += key == "alpha_grad_div" ? "alpha-grad-div"
               : key == "bptt_mode"    ? "bptt-mode"
               : key == "asgd_after"   ? "asgd-after"
               : key == "asgd_nonmono" ? "asgd-nonmono"
                                       : key;
        msg += " ";
        msg += saved;
        msg += " to continue it";
      }
      if (key == "threads" || key == "engine") {
        msg += "; pass --";
        msg += key;
        msg += " ";
        msg += it->second;
        msg += " to continue it";
      }
      throw DataError(msg);
    }
  }
}

void LanguageModelTrainer::resume(const std::string &path) {
  TensorFile f = readSafeTensors(path);
  auto meta = [&](const std::string &key) -> const std::string & {
    auto it = f.metadata.find(key);
    if (it == f.metadata.end())
      throw DataError(path + ": __metadata__." + key + ": missing (not a dopa LM checkpoint?)");
    return it->second;
  };
  if (meta("format") != "dopa-lm-checkpoint")
    throw DataError(path + ": __metadata__.format: '" + meta("format") +
                    "' is not a dopa language-model checkpoint");
  if (meta("version") != std::to_string(checkpointVersion))
    throw DataError(path + ": __metadata__.version: LM checkpoint version " + meta("version") +
                    ", this dopa reads version " + std::to_string(checkpointVersion));
  if (Trainer::checkpointChecksum(f) != meta("checksum"))
    throw DataError(path + ": __metadata__.checksum: the checkpoint's data or metadata does not "
                           "match its checksum (corrupt file)");
  checkFingerprint(f, path);
  int e = int(metadataCount(meta("epoch"), path, "epoch"));
  int64_t next = metadataCount(meta("next_window"), path, "next_window");
  if (e > cfg.epochs)
    throw DataError(path + ": the checkpoint has trained " + std::to_string(next > 0 ? e : e - 1) +
                    " epoch(s)" + (next > 0 ? " and part of the next" : "") + "; --epochs " +
                    std::to_string(cfg.epochs) + " asks for no more: pass a larger --epochs");
  int64_t inEpoch = e >= 1 ? int64_t(epochWindows(e).size()) : 0;
  if (e < 1 || next >= inEpoch)
    throw DataError(path + ": __metadata__.next_window: " + std::to_string(next) +
                    " is past the epoch's " + std::to_string(inEpoch) + " windows");
  const NetworkInfo &info = net.info();
  int64_t n = int64_t(info.numParams);
  const StoredTensor *params = f.find("params");
  if (!params || params->dtype != DType::F32 || params->shape != std::vector<int64_t>{n})
    throw DataError(path + ": params: missing or not F32 [" + std::to_string(n) + "]");
  const StoredTensor *wl = f.find("log.windows");
  const StoredTensor *el = f.find("log.epochs");
  if (!wl || wl->dtype != DType::F64 || wl->shape.size() != 2 || wl->shape[1] != 6)
    throw DataError(path + ": log.windows: expected F64 [N, 6]");
  if (!el || el->dtype != DType::F64 || el->shape.size() != 2 || el->shape[1] != 5 ||
      el->shape[0] != e - 1)
    throw DataError(path + ": log.epochs: expected F64 [" + std::to_string(e - 1) + ", 5]");
  std::vector<std::vector<float>> states;
  if (next > 0)
    for (const TensorInfo &s : info.states) {
      const StoredTensor *t = f.find("state." + s.name);
      if (!t || t->dtype != DType::F32 || t->shape != std::vector<int64_t>{cfg.batch, s.numel()})
        throw DataError(path + ": state." + s.name + ": missing or not F32 [" +
                        std::to_string(cfg.batch) + ", " + std::to_string(s.numel()) + "]");
      states.push_back(t->toFloat());
    }
  // (No finiteness check of the values: an LM run goes on through a diverged window, and its
  // checkpoint holds what it had; only the log's counts are checked, below.)
  std::vector<float> p = params->toFloat();
  std::copy(p.begin(), p.end(), net.params());
  epoch = e;
  nextWindow = next;
  epochLossSum = metadataReal(meta("epoch_loss_sum"), path, "epoch_loss_sum");
  epochTokens = metadataCount(meta("epoch_tokens"), path, "epoch_tokens");
  epochSeconds = metadataReal(meta("epoch_seconds"), path, "epoch_seconds");
  average = IterateAverage();
  auto asgd = f.metadata.find("asgd_steps"); // absent before averaged SGD existed: not averaging
  if (asgd != f.metadata.end() && asgd->second != "-1") {
    int64_t steps = metadataCount(asgd->second, path, "asgd_steps");
    const StoredTensor *sum = f.find("asgd.sum");
    if (!sum || sum->dtype != DType::F64 || sum->shape != std::vector<int64_t>{n})
      throw DataError(path + ": asgd.sum: missing or not F64 [" + std::to_string(n) + "]");
    average.restore(sum->toDouble(), steps);
  }
  windows.clear();
  std::vector<double> rows = wl->toDouble();
  for (size_t i = 0; i + 6 <= rows.size(); i += 6)
    for (int k : {0, 1}) // the epoch and the window: counts
      if (!isCountValue(rows[i + size_t(k)]))
        throw DataError(path + ": log.windows: row " + std::to_string(i / 6) + " has " +
                        std::to_string(rows[i + size_t(k)]) + " where a count belongs");
  for (size_t i = 0; i + 6 <= rows.size(); i += 6)
    windows.push_back(
        {int(rows[i]), int64_t(rows[i + 1]), rows[i + 2], rows[i + 3], rows[i + 4], rows[i + 5]});
  epochs.clear();
  rows = el->toDouble();
  for (size_t i = 0; i + 5 <= rows.size(); i += 5)
    if (!isCountValue(rows[i]) || rows[i] > 1e9) // an epoch
      throw DataError(path + ": log.epochs: row " + std::to_string(i / 5) + " has epoch " +
                      std::to_string(rows[i]));
  for (size_t i = 0; i + 5 <= rows.size(); i += 5)
    epochs.push_back({int(rows[i]), rows[i + 1], rows[i + 2], rows[i + 3], rows[i + 4]});
  if (next > 0) { // this rank's streams of the carried state (the checkpoint has all of them)
    net.beginEpisode(last - first);
    for (size_t s = 0; s < states.size(); ++s)
      net.setState(int(s), states[s].data() + int64_t(first) * info.states[s].numel());
  }
}

std::vector<float> LanguageModelTrainer::allStreams(int s) const {
  int64_t numel = net.info().states[size_t(s)].numel();
  const float *mine = net.state(s);
  if (!comm)
    return {mine, mine + int64_t(cfg.batch) * numel};
  std::vector<int> counts;
  for (int r = 0; r < comm->size(); ++r) {
    auto [b0, b1] = batchSlice(cfg.batch, r, comm->size());
    counts.push_back(int((b1 - b0) * numel));
  }
  std::vector<float> all(size_t(cfg.batch) * size_t(numel));
  comm->allgather(mine, all.data(), counts);
  return all;
}

std::string LanguageModelTrainer::stateDigest() const {
  Fnv1a h;
  h.values(net.params(), net.info().numParams);
  std::string text;
  for (const auto &[key, value] : settings())
    text.append(key).append("=").append(value).append("\n");
  // Also what decides the collectives' order (the number of windows, epochs and checkpoints).
  text += "epochs=" + std::to_string(cfg.epochs) +
          "\ncheckpoint_every=" + std::to_string(cfg.checkpointEvery) +
          "\nstop_after=" + std::to_string(cfg.stopAfter) + "\n";
  return text + "epoch=" + std::to_string(epoch) + "\nnext_window=" + std::to_string(nextWindow) +
         "\nparameters=" + std::to_string(h.h) + "\n";
}

bool dopa::plotPerplexity(const std::vector<EpochLog> &epochs, const std::string &pngPath,
                          const std::string &title) {
  fs::path dir = fs::path(pngPath).parent_path();
  std::string data = (dir / ".perplexity.csv").string();
  {
    std::ofstream out(data);
    for (const EpochLog &e : epochs)
      out << e.epoch << "," << e.trainPerplexity << "," << e.validPerplexity << "\n";
  }
  std::ostringstream script;
  script << "set title " << gnuplotQuoted(title)
         << "\nset xlabel 'epoch'\nset ylabel 'perplexity'\n"
         << "set logscale y\nset key right top\nset grid\nset datafile separator ','\n"
         << "plot " << gnuplotQuoted(data)
         << " using 1:3 with linespoints lw 2 title 'validation', " << gnuplotQuoted(data)
         << " using 1:2 with linespoints lw 1 dt 2 title 'training'\n";
  bool ok = runGnuplot(script.str(), pngPath, "epochs.csv");
  fs::remove(data);
  return ok;
}

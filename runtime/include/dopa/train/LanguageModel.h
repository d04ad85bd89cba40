//===- LanguageModel.h - Word-level language modelling with truncated BPTT -===//
//
// Trains a network that reads one token per step (an int input) and writes `logits` over the
// vocabulary, on a corpus (Corpus.h), as Zaremba et al. (2014) and the paper's basic model do: the
// training text as B parallel streams (batchify), windows of `bptt` steps, the recurrent state
// (the Hebbian traces included) carried from window to window without gradient and reset at the
// start of each epoch and of each evaluation; per window the cross-entropy SUMMED over the steps
// and averaged over the batch (the convention behind "lr 1, clip 5"; equivalently lr bptt and clip
// 5/bptt on the per-token mean), its gradient by BPTT, global-norm clipping, then SGD with an
// optional L2 penalty (PyTorch's weight_decay: g += l2 * p after clipping). The learning rate of
// epoch e (from 1) is lr * lrDecay^max(0, e - decayStart). After each epoch the validation
// perplexity; at the end the test perplexity.
//
// Checkpoints (every checkpointEvery windows and at each epoch's end) hold the parameters, the
// position (epoch and window), the carried state and the logs, so a run resumes bit-exactly, also
// in the middle of an epoch. They are written atomically, fingerprinted (model, data, every
// setting, threads, engine) and checksummed like the RL trainer's, and validated on load.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/runtime/Masks.h"
#include "dopa/runtime/Network.h"
#include "dopa/runtime/SafeTensors.h"
#include "dopa/train/Communicator.h"
#include "dopa/train/Corpus.h"
#include "dopa/train/LMRecipe.h"

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace dopa {

struct LMConfig {
  int batch = 20;           // parallel streams
  int bptt = 20;            // steps per window
  int epochs = 13;          // Zaremba's max_max_epoch
  double lr = 1.0;          // SGD on the summed loss
  double lrDecay = 0.35;    // the middle of the paper's search range (0.25-0.40)
  int decayStart = 5;       // the middle of {4, 5, 6}: epochs 1..5 at lr, then decaying
  double clipNorm = 5.0;    // global gradient norm
  double l2 = 1e-6;         // the smallest of the paper's range (1e-2 ... 1e-6)
  double initScale = 0.1;   // parameters initialized uniform(-0.1, 0.1) become uniform(-s, s)
  int64_t limitBatches = 0; // windows per epoch and per evaluation (0: all): smoke runs
  int64_t stopAfter = 0;    // windows to train in this run, then checkpoint and stop (0: all)
  int evalBatch = 10;       // streams for the validation perplexity (awd-lstm-lm's eval batch)
  int testBatch = 1;        // streams for the test perplexity (one stream through the whole text)
  uint64_t seed = 0;        // parameter initialization
  int64_t checkpointEvery = 500; // windows between checkpoints (0: at epoch ends only)
  std::string outDir;            // checkpoint.st, log.csv, epochs.csv, perplexity.png; empty: none
  std::string model;             // recorded and checked on resume
  std::string description;       // likewise (spec, -D)
  std::string engine;            // likewise
  int threads = 0;               // likewise (0: omp_get_max_threads())
  // The large model's recipe (awd-lstm-lm, LMRecipe.h); the defaults are Zaremba's.
  bool lossMean = false;     // the loss is the mean over the window's steps, not their sum
  bool variableBptt = false; // variableBpttWindows, the learning rate scaled by length / bptt
  double ar = 0, tar = 0;    // AR on the spec's output `ar_h`, TAR on its output `tar_h`
  double alphaGradDiv = 1;   // gradients of parameters named alpha divided by it before clipping
  int asgdAfter = 0;   // averaged SGD from the end of this epoch (0: never); evaluations use it
  int asgdNonmono = 0; // ... or once validation is worse than the best before the last n epochs
};

struct WindowLog {
  int epoch;      // from 1
  int64_t window; // within the epoch, from 0
  double loss;    // mean cross-entropy per token of the window, before the update
  double lr;
  double gradNorm; // before clipping
  double seconds;
};

struct EpochLog {
  int epoch;
  double trainPerplexity; // exp of the mean training loss over the epoch's windows
  double validPerplexity;
  double lr;
  double seconds;
};

/// Called after every window (progress display): the window and the windows in its epoch.
using LMProgressFn = std::function<void(const WindowLog &, int64_t windowsPerEpoch)>;
/// Called after every evaluation.
using LMEpochFn = std::function<void(const EpochLog &)>;

class LanguageModelTrainer {
public:
  /// `net` must take one int input and have an output `logits` of the vocabulary's size; throws
  /// std::invalid_argument otherwise. The corpus and the network outlive the trainer.
  /// With `comm` (several ranks), the run is data-parallel: this rank trains its slice of the
  /// streams (batchSlice), the loss and the gradients are summed over the ranks before every
  /// update, the evaluations split their streams likewise, and rank 0 alone writes files; every
  /// rank calls every method in the same order (checkpoints gather the carried state).
  LanguageModelTrainer(Network &net, const Corpus &corpus, LMConfig config,
                       Communicator *comm = nullptr);

  /// Parameters from their initializers (seed), then --init-scale.
  void initFresh();
  /// Continue the checkpoint at `path`; DataError naming the file and field when it is corrupt or
  /// of another model, data or configuration.
  void resume(const std::string &path);
  /// Train until config.epochs are done; returns the test perplexity. Throws std::runtime_error on
  /// a non-finite loss or gradient (the last checkpoint is kept).
  double run(const LMProgressFn &progress = nullptr, const LMEpochFn &epochDone = nullptr);

  /// Perplexity of `tokens` read as `batch` streams from a reset state (no gradient), over at most
  /// limitBatches windows when that is set.
  double perplexity(const std::vector<int32_t> &tokens, int batch);

  /// One training window at `window` of `data` (batchified): forward, loss, backward, clip, SGD.
  WindowLog trainWindow(const std::vector<int32_t> &data, const Window &window, int epoch,
                        int64_t index, double lr);

  void saveCheckpoint(const std::string &path) const;
  /// Every setting that shapes the run (what checkpoints record and resume checks): config.json.
  std::map<std::string, std::string> settings() const;
  const std::vector<WindowLog> &windowLog() const { return windows; }
  const std::vector<EpochLog> &epochLog() const { return epochs; }
  /// The learning rate of epoch e (from 1).
  double learningRate(int epoch) const;
  /// The training windows of epoch e: fixed or variable lengths, at most limitBatches.
  std::vector<Window> epochWindows(int epoch) const;
  /// Windows in the current epoch.
  int64_t windowsPerEpoch() const;
  /// Whether averaged SGD has started (evaluations use the average once it has an update).
  bool averaging() const { return average.active(); }
  /// Replace the parameters by the average of the iterates (the model the evaluations scored);
  /// false, changing nothing, when there is no average. For the end of a run: --save-params.
  bool loadAverage();
  /// Whether the last run() stopped at LMConfig::stopAfter windows (and wrote its checkpoint).
  bool stoppedEarly() const { return stopped; }
  int epochNow() const { return epoch; }

  static constexpr int checkpointVersion = 1;

private:
  void writeLogs() const;
  void writeEpochLog() const;
  void appendLog(const WindowLog &log) const;
  void checkFingerprint(const TensorFile &f, const std::string &path) const;
  /// Whether this process writes the run's files (one process, or rank 0).
  bool writes() const { return !cfg.outDir.empty() && (!comm || comm->rank() == 0); }
  /// Every stream's state `s` (batch * numel values), gathered from the ranks.
  std::vector<float> allStreams(int s) const;

public:
  /// The parameters, the position and the settings as text: equal on every rank of a run (the
  /// tool compares them at the start).
  std::string stateDigest() const;

private:
  Network &net;
  const Corpus &corpus;
  LMConfig cfg;
  std::vector<int32_t> trainData; // batchified
  int64_t trainRows = 0;
  int input = 0, logitsOut = -1;
  int vocab = 0;
  // Position: the next window to train (epoch from 1; window within it).
  int epoch = 1;
  int64_t nextWindow = 0;
  double epochLossSum = 0; // the epoch's summed per-token losses (for its training perplexity)
  int64_t epochTokens = 0;
  double epochSeconds = 0;
  std::vector<WindowLog> windows;
  std::vector<EpochLog> epochs;
  double testPerplexity = 0;
  bool stopped = false;
  Communicator *comm = nullptr; // several ranks, else null
  int first = 0, last = 0;      // this rank's streams [first, last)
  // A window's buffers, kept from window to window (fresh pages would fault in every window):
  // its tokens, every step's outputs (per output, steps x streams x numel, consecutive steps
  // consecutive, so that the generated code's readouts are one GEMM for the window; the logits
  // are overwritten by dLoss/d logits) and the pointer arrays Network::forward takes: step t's
  // input and output pointers from t * (inputs or outputs), and each step's first.
  std::vector<float> windowTokens;
  std::vector<std::vector<float>> windowOutputs;
  std::vector<const float *> windowInputPtrs;
  std::vector<float *> windowOutputPtrs;
  std::vector<const float *const *> windowInputs;
  std::vector<float *const *> windowOutputsAt;
  // The spec's dropout masks: drawn for every training window (from a generator seeded by the
  // run's seed and the window's place, so a resumed run and every rank draw the same), off for
  // the evaluations. The step's input pointers: the token, and each mask input's values.
  DropoutMasks masks;
  std::vector<const float *> stepInputs;
  std::vector<std::pair<size_t, size_t>> learned; // (offset, count) of each learned parameter
  std::vector<std::pair<size_t, size_t>> alphas;  // likewise, the parameters named alpha
  int arOut = -1, tarOut = -1;                    // outputs ar_h and tar_h when AR / TAR are on
  std::vector<std::vector<float>> penaltyGrads;   // per step: d/d [ar_h | tar_h]
  IterateAverage average;
  /// The step's input pointers: `tokens`, and each mask input's current values.
  const float *const *inputsWith(const float *tokens);
  /// The forward of a window's `steps` steps as one Network::forward, for `n` streams from
  /// `from` of `data` (batchified, `batch` streams) from row `start`: the outputs land in
  /// windowOutputs; returns the summed cross-entropy of the logits against the next tokens, the
  /// logits overwritten by its gradient (divided by `divisor`) when `withGrad`.
  double forwardWindow(const std::vector<int32_t> &data, int batch, int from, int n, int64_t start,
                       int steps, bool withGrad, int divisor);
  /// Evaluate with the averaged parameters when averaging (then restore the iterate).
  double evaluate(const std::vector<int32_t> &tokens, int batch);
  /// After an epoch's validation: start averaging when the settings say so.
  void maybeStartAveraging();
  /// Output k of step t of the last forwardWindow() (this rank's streams x numel values).
  float *windowOutput(int t, int k) {
    return windowOutputPtrs[size_t(t) * windowOutputs.size() + size_t(k)];
  }
  /// AR/TAR: the gradients of the penalties on the window's ar_h and tar_h, into `grads`.
  void penaltyGradients(int steps, std::vector<std::vector<const float *>> &grads);
};

/// Validation perplexity per epoch as a PNG with gnuplot; false (with a message) without gnuplot.
bool plotPerplexity(const std::vector<EpochLog> &epochs, const std::string &pngPath,
                    const std::string &title);

} // namespace dopa

//===- LMRecipe.h - awd-lstm-lm's training regularizers and schedule ------===//
//
// The pieces of the large language model's recipe (Merity et al.'s awd-lstm-lm, as the paper's
// reference code uses it: shared/reference/backpropamine.md) that belong to the trainer rather than
// to the network: variable-length BPTT windows, activation and temporal activation regularization
// (AR/TAR) on outputs the spec exposes, and the iterate average of averaged SGD (ASGD). The
// dropouts are the spec's masks (dopa/runtime/Masks.h). LanguageModelTrainer uses them when
// LMConfig asks for them.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/runtime/Random.h"
#include "dopa/train/Corpus.h"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dopa {

/// awd-lstm-lm's training windows over `rows` rows: each length is drawn as
/// seq = max(5, int(N(b, 5))) with b = bptt (probability 0.95) or bptt / 2, capped at bptt + 10,
/// and the window starts where the previous one ended (clamped to the data, as get_batch does),
/// while start < rows - 2. The generator is the caller's (seeded per epoch by the trainer).
std::vector<Window> variableBpttWindows(int64_t rows, int bptt, Rng &rng);

/// Activation regularization over one window of `steps` steps: AR = ar * mean(a^2) over the steps,
/// the streams and the values of output `a` (awd: the last layer's dropped output), and TAR =
/// tar * mean((h_t - h_{t-1})^2) over consecutive steps of output `h` within the window (the
/// undropped output). `a[t]` and `h[t]` hold this rank's `count` streams of `width` values;
/// `totalStreams` is the batch across ranks (the means' denominator). The gradients are added to
/// `dA[t]` and `dH[t]` (same layout; null when the term is off), scaled by `scale` (1 when the loss
/// is the mean over the window's steps, the step count when it is their sum). Returns this rank's
/// part of the penalty, times `scale`.
double activationPenalties(const std::vector<const float *> &a, const std::vector<const float *> &h,
                           int count, int totalStreams, int64_t width, double ar, double tar,
                           double scale, const std::vector<float *> &dA,
                           const std::vector<float *> &dH);

/// The running average of the parameters since averaging started (averaged SGD with t0 = 0 and
/// no decay of its rate): after k updates, the mean of the k iterates.
class IterateAverage {
public:
  bool active() const { return steps > 0 || started; }
  /// Start averaging (from the next update on).
  void start(size_t numParams);
  /// Fold in the parameters after an update.
  void add(const float *params);
  /// The mean (computed here, not at every add()).
  const std::vector<float> &values();
  /// The iterates' sum (what a checkpoint keeps: resuming from it is bit-exact).
  const std::vector<double> &sums() const { return sum; }
  int64_t count() const { return steps; }
  /// Restore a checkpointed average: `count` updates and their sum.
  void restore(std::vector<double> sums, int64_t count);

private:
  bool started = false;
  int64_t steps = 0;
  std::vector<float> mean;
  std::vector<double> sum; // the iterates' sum in double, so the mean does not drift
  int64_t meanOf = -1;     // the count `mean` was computed for
};

} // namespace dopa

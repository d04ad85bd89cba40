//===- Trainer.h - Meta-training on the cue-reward task with A2C ---------===//
//
// The training loop of sr/srbatch.py for any Network: per iteration, one batch of episodes with
// actions sampled from the policy, the A2C loss and its output gradients, BPTT through the whole
// episode, global gradient-norm clipping, and an Adam step (none during the first `burnIn`
// iterations, as the reference). Checkpoints hold the parameters, Adam's moments and every random
// generator's state, so a resumed run continues bit-exactly as an uninterrupted one would. They are
// written atomically, carry a format version and a checksum, and are validated on load.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/runtime/Network.h"
#include "dopa/train/A2C.h"
#include "dopa/train/CueReward.h"
#include "dopa/train/Optim.h"

#include <functional>
#include <string>
#include <vector>

namespace dopa {

struct TrainConfig {
  CueRewardConfig task;
  A2CConfig a2c;
  AdamConfig adam;
  int batch = 30; // --bs
  int64_t iterations = 1000;
  double clipNorm = 2.0; // --gc
  int64_t burnIn = 101;  // no optimizer step while iteration < burnIn (the reference's iter > 100)
  uint64_t seed = 0;
  int64_t checkpointEvery = 100; // 0: only at the end
  std::string outDir;            // checkpoint.st and log.csv go here; empty: none
  std::string description; // recorded in checkpoints (spec, variant, dims) and checked on resume
};

struct IterationLog {
  int64_t iteration;
  double meanReward; // batch mean of the episode's total reward
  double loss;
  double gradNorm;
  double seconds;
};

struct TrainState {
  int64_t iteration = 0; // iterations completed
  std::vector<IterationLog> log;
};

/// Called after every iteration (progress display).
using ProgressFn = std::function<void(const TrainConfig &, const IterationLog &)>;

class Trainer {
public:
  Trainer(Network &net, TrainConfig config);

  /// Initialize parameters from their initializers with the config's seed.
  void initFresh();
  /// Load `path` (a checkpoint of this network and configuration); throws DataError when it is
  /// corrupt, truncated, of another version, network or configuration.
  void resume(const std::string &path);

  /// Train until config.iterations; checkpoints every checkpointEvery iterations and at the end.
  /// Throws std::runtime_error on a non-finite loss or gradient (the last checkpoint is kept).
  void run(const ProgressFn &progress = nullptr);

  void saveCheckpoint(const std::string &path) const;
  const TrainState &state() const { return st; }

  static constexpr int checkpointVersion = 1;

private:
  IterationLog iterate();
  void writeLog() const;

  Network &net;
  TrainConfig cfg;
  CueRewardTask task;
  Adam adam;
  Rng envRng, policyRng;
  TrainState st;
  int logitsOut = -1, valueOut = -1;
};

/// Write the learning curve (batch-mean reward per iteration and a moving average) as a PNG with
/// gnuplot. Returns false, with a message on stderr, when gnuplot is not available.
bool plotLearningCurve(const std::vector<std::pair<std::string, std::vector<IterationLog>>> &runs,
                       const std::string &pngPath, const std::string &title);

} // namespace dopa

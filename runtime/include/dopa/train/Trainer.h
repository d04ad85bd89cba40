//===- Trainer.h - Meta-training on an episodic task with A2C ------------===//
//
// The training loop of sr/srbatch.py and maze/batch.py for any Network on any EpisodicTask
// (Task.h): per iteration, one batch of episodes with actions sampled from the policy, the A2C
// loss and its output gradients, BPTT through the whole episode, global gradient-norm clipping,
// and an Adam step (none during the first `burnIn` iterations, as the reference). Checkpoints hold
// the parameters, Adam's moments and every random generator's state, so a resumed run continues
// bit-exactly as an uninterrupted one would. They are written atomically, carry a format version,
// the task's settings and a checksum over the data and the metadata, and are validated on load. A
// run holds a lock on its folder (RunLock) so two runs never share one.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/runtime/Network.h"
#include "dopa/runtime/SafeTensors.h"
#include "dopa/train/A2C.h"
#include "dopa/train/Communicator.h"
#include "dopa/train/Optim.h"
#include "dopa/train/Task.h"

#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace dopa {

struct TrainConfig {
  std::string task = "cue-reward"; // the task's name: recorded in checkpoints, checked on resume
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
  int threads = 0;         // the OpenMP threads in use (they set the order of float sums): recorded
                           // and checked on resume; 0: omp_get_max_threads()
  std::string engine;      // the engine that runs the network (generated, generic, cuda): recorded
                           // and checked on resume
  /// Where an episode's random draws come from. Batch: one task generator and one policy
  /// generator for the whole batch, drawn element by element in lock step (every run before
  /// per-element stepping). PerElement: each element's episode draws from two generators of its
  /// own, seeded from those two at the start of the iteration, so its episode does not depend on
  /// the other elements' and can run start to end on one thread (Network::runElements). Auto:
  /// PerElement for tasks that step single elements (ElementSteps, Task.h), Batch for the others.
  /// Recorded in checkpoints as episode_rng. A resumed run keeps its checkpoint's with Auto (Batch
  /// where none is recorded); with Batch or PerElement it switches to that one from the
  /// checkpoint's iteration on (its episodes then differ from those of an unbroken run, drawn
  /// from the same distribution), and its checkpoints record where (episode_rng_since: the last
  /// switch only; config.json's "resumed" entries keep every resume's command line).
  enum class EpisodeRng { Auto, Batch, PerElement };
  EpisodeRng episodeRng = EpisodeRng::Auto;
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

/// What a checkpoint holds besides its tensors, validated (Trainer::readCheckpointState).
struct CheckpointState {
  int version = 0;
  int64_t iteration = 0;  // iterations completed
  int64_t adamSteps = 0;  // optimizer steps taken
  Rng::State envRng{};    // the task's generator
  Rng::State policyRng{}; // the action sampler's generator
  /// The episodes' generators (episode_rng; Batch when the checkpoint predates the entry).
  TrainConfig::EpisodeRng episodeRng = TrainConfig::EpisodeRng::Batch;
  /// The iteration from which the episodes drew as episodeRng says (episode_rng_since): 0 for a
  /// run that never switched (--episode-rng on resume).
  int64_t episodeRngSince = 0;
};

/// Called after every iteration (progress display).
using ProgressFn = std::function<void(const TrainConfig &, const IterationLog &)>;

class Trainer {
public:
  /// Train `net` on `task` (both outlive the trainer); throws std::invalid_argument when the
  /// network's input, `logits` or `value` do not fit the task, or the batches differ. With `comm`
  /// (data-parallel, Communicator.h), `net` runs this rank's slice of the batch (batchSlice); the
  /// task runs the whole batch in lock step, or, with per-element episodes on an engine that runs
  /// elements (Network::runElements), each rank runs its own elements' episodes and the episodes
  /// are gathered once per iteration; only a config with an outDir writes files (give rank 0 one).
  Trainer(Network &net, EpisodicTask &task, TrainConfig config, Communicator *comm = nullptr);

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
  /// The iteration from which the episodes have drawn as settings()' episode_rng says: 0 unless a
  /// resumed run switched (TrainConfig::episodeRng), then the checkpoint's iteration.
  int64_t episodeRngSince() const { return rngSince; }
  /// Whether the last resume() switched the episodes' scheme (an explicit TrainConfig::episodeRng
  /// other than the checkpoint's, at an iteration past 0).
  bool episodeRngSwitched() const { return rngSwitched; }
  /// Every setting that shapes the run (what checkpoints record and resume checks), by name, and
  /// episode_rng_since where the run switched its episodes: for config.json.
  std::map<std::string, std::string> settings() const;
  /// Where the run stands, as text: iteration, target, optimizer steps, the generators' states and
  /// a hash of the parameters and Adam's moments (ranks compare it at start).
  std::string stateDigest() const;

  /// Version 2 checksums the metadata too (version 1: the tensors only); both are read.
  static constexpr int checkpointVersion = 2;
  static constexpr int oldestCheckpointVersion = 1;

  /// Check what needs no network in a checkpoint read from `path`: format, version, checksum, the
  /// counts, the generator states and the log's shape. Throws DataError naming the file and field.
  static CheckpointState readCheckpointState(const TensorFile &file, const std::string &path);
  /// The checksum (16 hex digits) that a checkpoint of the current version records for `file`:
  /// FNV-1a over the tensors and every metadata entry except the checksum itself.
  static std::string checkpointChecksum(const TensorFile &file);

private:
  IterationLog iterate();
  /// One element's action at step t from its logits (a softmax draw with `rng`).
  static int sampleAction(const float *logits, int numActions, Rng &rng, double *probs);
  void gatherPolicy(const std::vector<std::vector<float>> &out, float *logits, float *values);
  void checkRanksAgree(const std::vector<int> &actions, const std::vector<float> &rewards);
  void stepInLockStep(bool perElement, std::vector<float> &logits, std::vector<float> &values,
                      std::vector<int> &actions, std::vector<float> &rewards);
  void gatherEpisodes(int steps, std::vector<float> &logits, std::vector<float> &values,
                      std::vector<int> &actions, std::vector<float> &rewards);
  void writeLog() const;
  void appendLog(const IterationLog &log) const;

  Network &net;
  EpisodicTask &task;
  ElementSteps *elements; // the task's per-element stepping, or null
  TrainConfig cfg;
  TrainConfig::EpisodeRng askedEpisodeRng; // cfg.episodeRng as given (Auto: keep a checkpoint's)
  int64_t rngSince = 0;                    // episodeRngSince()
  bool rngSwitched = false;                // episodeRngSwitched()
  Communicator *comm;
  int first = 0, last = 0;           // this rank's slice of the batch
  std::vector<float> mine, gathered; // this rank's and every rank's policy outputs of one step
  std::vector<int> gatherCounts;     // floats per rank in `gathered`
  std::vector<float> episodesMine, episodesAll; // this rank's and every rank's episodes
  std::vector<int> episodeCounts;               // floats per rank in `episodesAll`
  Adam adam;
  Rng envRng, policyRng;
  std::vector<Rng> elementEnv, elementPolicy; // per-element generators of the current iteration
  TrainState st;
  int logitsOut = -1, valueOut = -1;
};

/// The parameters' names and shapes as checkpoints record them (`param_layout`, so that `dopa
/// export` splits the flat parameters without the network): "name:d0xd1,name:d0,scalar:".
std::string paramLayoutText(const NetworkInfo &info);

/// A checkpoint's metadata field `field` of the file at `path` as a non-negative decimal count, or
/// as a finite number; anything else is a DataError naming the file and the field.
int64_t metadataCount(const std::string &text, const std::string &path, const std::string &field);
double metadataReal(const std::string &text, const std::string &path, const std::string &field);

/// Another run holds the lock on a run folder.
struct RunLockError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Throws DataError "<dir>: no such run folder; --resume continues the checkpoint of an earlier run
/// in --out" when `dir` is not a folder: a resume must not leave an empty one behind.
void requireRunFolder(const std::string &dir);

/// An advisory lock (flock) on `<dir>/.lock`, held for the life of the object: a second run on the
/// same folder fails at once instead of overwriting the first one's files. The file records the
/// holder's pid and host for the message, and is removed when the lock is released.
class RunLock {
public:
  /// Creates `dir` if needed. Throws RunLockError naming the holder's pid and host when another
  /// process (or another RunLock) holds the folder, std::runtime_error when it cannot be locked.
  explicit RunLock(const std::string &dir);
  ~RunLock();
  RunLock(const RunLock &) = delete;
  RunLock &operator=(const RunLock &) = delete;

private:
  std::string path;
  int fd = -1;
};

/// Write the learning curve (batch-mean reward per iteration and a moving average) as a PNG with
/// gnuplot. Returns false, with a message on stderr, when gnuplot is not available.
bool plotLearningCurve(const std::vector<std::pair<std::string, std::vector<IterationLog>>> &runs,
                       const std::string &pngPath, const std::string &title);

} // namespace dopa

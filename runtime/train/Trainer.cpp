//===- Trainer.cpp - Meta-training on an episodic task with A2C ---------===//
//
// Implements the training loop, checkpoints (safetensors with a version, a configuration
// fingerprint and an FNV-1a checksum, written atomically), the run-folder lock and the
// learning curve (its gnuplot script; Plot.cpp runs it).
//
//===----------------------------------------------------------------------===//
#include "dopa/train/Trainer.h"

#include "dopa/runtime/SafeTensors.h"
#include "dopa/train/CueReward.h"
#include "dopa/train/Fnv1a.h"
#include "dopa/train/Plot.h"

#include <omp.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace dopa;

namespace {

std::string hex(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

uint64_t parseHex(const std::string &s, const std::string &path, const std::string &field) {
  if (s.size() != 16 || s.find_first_not_of("0123456789abcdef") != std::string::npos)
    throw DataError(path + ": __metadata__." + field + ": not a 16-digit hex number");
  return std::stoull(s, nullptr, 16);
}

/// The tensors in name order (files list them in any order).
std::vector<const StoredTensor *> byName(const std::vector<StoredTensor> &tensors) {
  std::vector<const StoredTensor *> sorted;
  sorted.reserve(tensors.size());
  for (const StoredTensor &t : tensors)
    sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [](const StoredTensor *a, const StoredTensor *b) { return a->name < b->name; });
  return sorted;
}

/// Version 1: FNV-1a over the tensors' names and bytes, in name order; the metadata is not covered.
uint64_t checksumV1(const TensorFile &f) {
  Fnv1a h;
  for (const StoredTensor *t : byName(f.tensors)) {
    h.bytes(reinterpret_cast<const uint8_t *>(t->name.data()), t->name.size());
    h.bytes(t->bytes.data(), t->bytes.size());
  }
  return h.h;
}

/// Version 2: FNV-1a over each tensor in name order (its name, dtype, shape and bytes), then every
/// metadata entry but the checksum in key order (key and value), each text led by its length.
uint64_t checksumV2(const TensorFile &f) {
  Fnv1a h;
  for (const StoredTensor *t : byName(f.tensors)) {
    h.field(t->name);
    h.field(dtypeName(t->dtype));
    std::string shape;
    for (int64_t d : t->shape)
      shape += std::to_string(d) + ",";
    h.field(shape);
    h.bytes(t->bytes.data(), t->bytes.size());
  }
  for (const auto &[key, value] : f.metadata) {
    if (key == "checksum")
      continue;
    h.field(key);
    h.field(value);
  }
  return h.h;
}

std::string rngString(const Rng::State &s) {
  std::string out;
  for (uint64_t w : s.words)
    out += hex(w) + ":";
  uint64_t spareBits;
  std::memcpy(&spareBits, &s.spare, 8);
  return out + (s.haveSpare ? "1:" : "0:") + hex(spareBits);
}

Rng::State parseRng(const std::string &text, const std::string &path, const std::string &field) {
  Rng::State s{};
  std::vector<std::string> parts;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, ':'))
    parts.push_back(part);
  if (parts.size() != 6 || (parts[4] != "0" && parts[4] != "1"))
    throw DataError(path + ": __metadata__." + field + ": malformed generator state");
  for (int i = 0; i < 4; ++i)
    s.words[i] = parseHex(parts[size_t(i)], path, field);
  s.haveSpare = parts[4] == "1";
  uint64_t spareBits = parseHex(parts[5], path, field);
  std::memcpy(&s.spare, &spareBits, 8);
  return s;
}

/// How checkpoints record TrainConfig::episodeRng (Auto, unresolved, is the old default: batch).
std::string episodeRngText(TrainConfig::EpisodeRng r) {
  return r == TrainConfig::EpisodeRng::PerElement ? "per-element" : "batch";
}

/// What must agree between a checkpoint and the run that resumes it: everything that determines the
/// continuation. The network (its name, parameter count and the description: spec, variant, -D
/// dims), the task (its name and every setting it reports), the batch, the seed, every optimizer,
/// clipping, burn-in and A2C setting, the OpenMP thread count (it sets the order of float sums) and
/// the engine (each computes in its own order). What may change on resume: the number of iterations
/// (only upwards), how often checkpoints are written, and the BPTT memory plan of the generated
/// engine (--memory-budget, --bptt-segment: they choose which states are kept and which
/// recomputed, not the arithmetic). Parameters, Adam's moments and step count, the generators and
/// the iteration come from the checkpoint itself, all covered by its checksum (version 1: only the
/// tensors were), and so does episode_rng: recorded here, adopted on resume rather than checked
/// (or replaced, when the run asks for another scheme explicitly).
std::map<std::string, std::string> fingerprint(const TrainConfig &c, const NetworkInfo &info,
                                               const EpisodicTask &task) {
  std::map<std::string, std::string> f = {
      {"network", info.name},
      {"num_params", std::to_string(info.numParams)},
      {"description", c.description},
      {"task", c.task},
      {"batch", std::to_string(c.batch)},
      {"seed", std::to_string(c.seed)},
      {"lr", settingText(c.adam.lr)},
      {"adam_eps", settingText(c.adam.eps)},
      {"clip_norm", settingText(c.clipNorm)},
      {"burn_in", std::to_string(c.burnIn)},
      {"gamma", settingText(c.a2c.gamma)},
      {"bent", settingText(c.a2c.entropyWeight)},
      {"blossv", settingText(c.a2c.valueWeight)},
      {"baseline",
       c.a2c.baseline == A2CConfig::Baseline::FirstElement ? "first-element" : "per-element"},
      {"adam_beta1", settingText(c.adam.beta1)},
      {"adam_beta2", settingText(c.adam.beta2)},
      {"weight_decay", settingText(c.adam.weightDecay)},
      {"threads", std::to_string(c.threads)},
      {"engine", c.engine},
      {"episode_rng", episodeRngText(c.episodeRng)}};
  // The checkpoint's own entries (saveCheckpoint) are reserved too.
  static const char *const reserved[] = {"format",     "version",      "iteration",
                                         "adam_steps", "env_rng",      "policy_rng",
                                         "checksum",   "param_layout", "episode_rng_since"};
  for (const auto &[key, value] : task.settings()) {
    bool clash = !f.emplace(key, value).second;
    for (const char *r : reserved)
      clash |= key == r;
    if (clash)
      throw std::invalid_argument("task setting '" + key +
                                  "' clashes with a trainer or checkpoint entry: rename it");
  }
  return f;
}

/// The fingerprint of a default run on the default cue-reward task: what version-1 checkpoints
/// (all of them cue-reward runs) were made with where they lack a setting.
std::map<std::string, std::string> version1Defaults(const NetworkInfo &info) {
  CueRewardTask task(CueRewardConfig{}, 1);
  return fingerprint(TrainConfig{}, info, task);
}

/// The settings a checkpoint may lack because they joined the fingerprint later: in version 1
/// (cues_per_trial), with version 2 (the optimizer's and the task's constants, the threads and the
/// engine), with the task interface (task: every checkpoint before it is a cue-reward run) and
/// with per-element episodes (episode_rng: every checkpoint before them drew for the batch). A
/// checkpoint of version <= `upTo` without the key was made with the default, which no option could
/// change then (`unknown` false), or with a setting that was not recorded, so any value resumes it
/// (`unknown` true: the thread count and the engine).
struct AddedLater {
  const char *key;
  int upTo;
  bool unknown;
};
constexpr AddedLater addedLater[] = {
    {"cues_per_trial", 1, false}, {"adam_beta1", 1, false}, {"adam_beta2", 1, false},
    {"weight_decay", 1, false},   {"cue_size", 1, false},   {"reward", 1, false},
    {"wrong_penalty", 1, false},  {"flip_prob", 1, false},  {"threads", 1, true},
    {"engine", 1, true},          {"task", 2, false},       {"episode_rng", 2, false}};

/// The fingerprint value a checkpoint records for `key`: its own, or for an older checkpoint
/// without it, the default (null: not recorded, anything goes).
const std::string *recorded(const TensorFile &f, const CheckpointState &state,
                            const std::string &key, const std::string &path,
                            const std::map<std::string, std::string> &defaults) {
  auto it = f.metadata.find(key);
  if (it != f.metadata.end())
    return &it->second;
  for (const AddedLater &later : addedLater)
    if (key == later.key && state.version <= later.upTo)
      return later.unknown ? nullptr : &defaults.at(key);
  throw DataError(path + ": __metadata__." + key + ": missing (not a dopa checkpoint?)");
}

/// What to add to a fingerprint mismatch: how to continue the checkpoint anyway, where an option
/// can.
std::string mismatchHint(const std::string &key, const std::string &had) {
  if (had.empty())
    return "";
  if (key == "threads")
    return "; pass --threads " + had + " to continue it (the thread count sets the order of sums)";
  if (key == "engine")
    return "; pass --engine " + had + " to continue it";
  return "";
}

} // namespace

Trainer::Trainer(Network &net, EpisodicTask &task, TrainConfig config, Communicator *comm)
    : net(net), task(task), elements(elementSteps(task)), cfg(std::move(config)),
      comm(comm && comm->size() > 1 ? comm : nullptr), adam(cfg.adam, net.info().numParams),
      envRng(cfg.seed * 2 + 1), policyRng(cfg.seed * 2 + 2) {
  std::tie(first, last) = this->comm ? batchSlice(cfg.batch, this->comm->rank(), this->comm->size())
                                     : std::pair<int, int>(0, cfg.batch);
  if (last <= first)
    throw std::invalid_argument(
        this->comm ? "a batch of " + std::to_string(cfg.batch) + " episodes cannot be split over " +
                         std::to_string(this->comm->size()) +
                         " ranks: pass --batch of at least the number of ranks"
                   : "the batch must have at least one episode, not " + std::to_string(cfg.batch));
  if (cfg.threads == 0)
    cfg.threads = omp_get_max_threads();
  askedEpisodeRng = cfg.episodeRng;
  if (cfg.episodeRng == TrainConfig::EpisodeRng::Auto)
    cfg.episodeRng =
        elements ? TrainConfig::EpisodeRng::PerElement : TrainConfig::EpisodeRng::Batch;
  if (cfg.episodeRng == TrainConfig::EpisodeRng::PerElement && !elements)
    throw std::invalid_argument(
        "per-element episodes need a task that steps single elements; the " + cfg.task +
        " task does not");
  const NetworkInfo &info = net.info();
  if (task.batch() != cfg.batch)
    throw std::invalid_argument("the task runs batches of " + std::to_string(task.batch()) +
                                " episodes, the trainer " + std::to_string(cfg.batch));
  for (const auto *list : {&info.inputs, &info.params})
    for (const TensorInfo &t : *list)
      if (t.isMask())
        throw std::invalid_argument("network '" + info.name + "' declares the dropout mask '" +
                                    t.name +
                                    "': the A2C trainer does not draw masks (dopa train lm does)");
  if (info.inputs.size() != 1 || info.inputs[0].numel() != task.observationSize() ||
      info.inputs[0].isInt)
    throw std::invalid_argument("network '" + info.name + "' must take one real input of " +
                                std::to_string(task.observationSize()) + " values for the " +
                                cfg.task + " task");
  logitsOut = info.findOutput("logits");
  valueOut = info.findOutput("value");
  if (logitsOut < 0 || valueOut < 0 ||
      info.outputs[size_t(logitsOut)].numel() != task.numActions() ||
      info.outputs[size_t(valueOut)].numel() != 1)
    throw std::invalid_argument("network '" + info.name + "' needs outputs 'logits' [" +
                                std::to_string(task.numActions()) +
                                "] and 'value' [1] for A2C on the " + cfg.task + " task");
}

void Trainer::initFresh() {
  initParams(net.info(), net.params(), cfg.seed);
  st = TrainState{};
}

/// The policy's outputs of one step for the whole batch: this rank's slice (the network's
/// outputs, `mine`: logits then values) gathered from every rank into logits[B*A] and values[B].
void Trainer::gatherPolicy(const std::vector<std::vector<float>> &out, float *logits,
                           float *values) {
  int B = cfg.batch, A = task.numActions(), n = last - first;
  const std::vector<float> &lg = out[size_t(logitsOut)], &vl = out[size_t(valueOut)];
  if (!comm) {
    std::copy(lg.begin(), lg.end(), logits);
    std::copy(vl.begin(), vl.end(), values);
    return;
  }
  // One message per step: each rank's [logits of its elements, their values]. The buffers and
  // counts are sized once per run (the batch split does not change).
  if (gatherCounts.empty()) {
    for (int r = 0; r < comm->size(); ++r) {
      auto [b0, b1] = batchSlice(B, r, comm->size());
      gatherCounts.push_back((b1 - b0) * (A + 1));
    }
    mine.resize(size_t(n) * size_t(A + 1));
    gathered.resize(size_t(B) * size_t(A + 1));
  }
  std::copy(lg.begin(), lg.end(), mine.begin());
  std::copy(vl.begin(), vl.end(), mine.begin() + long(size_t(n) * A));
  comm->allgather(mine.data(), gathered.data(), gatherCounts);
  size_t at = 0;
  for (int r = 0; r < comm->size(); ++r) {
    auto [b0, b1] = batchSlice(B, r, comm->size());
    size_t m = size_t(b1 - b0);
    std::copy(gathered.begin() + long(at), gathered.begin() + long(at + m * A),
              logits + size_t(b0) * A);
    std::copy(gathered.begin() + long(at + m * A), gathered.begin() + long(at + m * (A + 1)),
              values + b0);
    at += m * (A + 1);
  }
}

/// The episodes of every rank's elements (each rank ran its own, runElements): logits, values,
/// actions and rewards of [first, last) from every rank into the whole batch's arrays, in one
/// message (the actions travel as floats: small integers, exact).
void Trainer::gatherEpisodes(int steps, std::vector<float> &logits, std::vector<float> &values,
                             std::vector<int> &actions, std::vector<float> &rewards) {
  const int B = cfg.batch, A = task.numActions(), per = A + 3;
  // The counts and buffers are sized once per run (the split and the episode length are fixed).
  if (episodesAll.size() != size_t(steps) * size_t(B) * size_t(per)) {
    episodeCounts.clear();
    for (int r = 0; r < comm->size(); ++r) {
      auto [b0, b1] = batchSlice(B, r, comm->size());
      episodeCounts.push_back(steps * (b1 - b0) * per);
    }
    episodesMine.reserve(size_t(steps) * size_t(last - first) * size_t(per));
    episodesAll.resize(size_t(steps) * size_t(B) * size_t(per));
  }
  auto slot = [&](int t, int b) { return size_t(t) * B + size_t(b); };
  episodesMine.clear();
  for (int t = 0; t < steps; ++t)
    for (int b = first; b < last; ++b) {
      const float *lg = logits.data() + slot(t, b) * A;
      episodesMine.insert(episodesMine.end(), lg, lg + A);
      episodesMine.push_back(values[slot(t, b)]);
      episodesMine.push_back(float(actions[slot(t, b)]));
      episodesMine.push_back(rewards[slot(t, b)]);
    }
  comm->allgather(episodesMine.data(), episodesAll.data(), episodeCounts);
  const float *p = episodesAll.data();
  for (int r = 0; r < comm->size(); ++r) {
    auto [b0, b1] = batchSlice(B, r, comm->size());
    for (int t = 0; t < steps; ++t)
      for (int b = b0; b < b1; ++b, p += per) {
        std::copy(p, p + A, logits.data() + slot(t, b) * A);
        values[slot(t, b)] = p[A];
        actions[slot(t, b)] = int(p[A + 1]);
        rewards[slot(t, b)] = p[A + 2];
      }
  }
}

/// Every rank sampled the same actions and got the same rewards (the same episodes): a hash of
/// them and of the task's generator compared across the ranks; std::runtime_error naming the first
/// rank that differs (e.g. a plug-in task drawing from a generator of its own, or a math library
/// that rounds differently on another node).
void Trainer::checkRanksAgree(const std::vector<int> &actions, const std::vector<float> &rewards) {
  Fnv1a h;
  h.values(actions.data(), actions.size());
  h.values(rewards.data(), rewards.size());
  h.field(rngString(envRng.state()));
  std::string differs = comm->firstDifference("episodes " + hex(h.h));
  if (!differs.empty())
    throw std::runtime_error("iteration " + std::to_string(st.iteration) +
                             ": the ranks' episodes diverged (" + differs + ")");
}

std::string Trainer::stateDigest() const {
  Fnv1a h;
  h.values(net.params(), net.info().numParams);
  h.values(adam.firstMoment().data(), adam.firstMoment().size());
  h.values(adam.secondMoment().data(), adam.secondMoment().size());
  return "iteration=" + std::to_string(st.iteration) +
         "\niterations=" + std::to_string(cfg.iterations) +
         "\nadam_steps=" + std::to_string(adam.steps()) + "\nenv_rng=" + rngString(envRng.state()) +
         "\npolicy_rng=" + rngString(policyRng.state()) + "\nparameters_and_moments=" + hex(h.h) +
         "\n";
}

int Trainer::sampleAction(const float *logits, int numActions, Rng &rng, double *probs) {
  softmax(logits, numActions, probs);
  double u = rng.uniform(), acc = 0;
  for (int k = 0; k < numActions; ++k) {
    acc += probs[k];
    if (u < acc)
      return k;
  }
  return numActions - 1;
}

/// The batch's episodes step by step: observe every element, one network step for this rank's
/// slice, the policy outputs gathered from the ranks, every element's action sampled and applied
/// (with the batch's generators, or each element's own).
void Trainer::stepInLockStep(bool perElement, std::vector<float> &logits,
                             std::vector<float> &values, std::vector<int> &actions,
                             std::vector<float> &rewards) {
  const NetworkInfo &info = net.info();
  int B = cfg.batch, T = task.episodeLength(), A = task.numActions(), n = last - first;
  int obs = task.observationSize();
  std::vector<float> x(size_t(B) * size_t(obs));
  std::vector<std::vector<float>> outBuf;
  std::vector<float *> outPtr;
  outBuf.reserve(info.outputs.size());
  outPtr.reserve(info.outputs.size());
  for (const TensorInfo &o : info.outputs)
    outBuf.emplace_back(size_t(n) * size_t(o.numel()));
  for (auto &buf : outBuf)
    outPtr.push_back(buf.data());
  std::vector<double> probs(static_cast<size_t>(A));
  for (int t = 0; t < T; ++t) {
    if (perElement)
      for (int b = 0; b < B; ++b)
        elements->observeElement(b, t, x.data() + size_t(b) * obs);
    else
      task.observe(x.data());
    const float *in[] = {x.data() + size_t(first) * obs};
    net.step(in, outPtr.data());
    float *stepLogits = logits.data() + size_t(t) * B * A;
    gatherPolicy(outBuf, stepLogits, values.data() + size_t(t) * B);
    int *stepActions = actions.data() + size_t(t) * B;
    float *stepRewards = rewards.data() + size_t(t) * B;
    for (int b = 0; b < B; ++b)
      stepActions[b] =
          sampleAction(stepLogits + size_t(b) * A, A,
                       perElement ? elementPolicy[size_t(b)] : policyRng, probs.data());
    if (perElement)
      for (int b = 0; b < B; ++b)
        stepRewards[b] = elements->actElement(b, t, stepActions[b], elementEnv[size_t(b)]);
    else
      task.act(stepActions, stepRewards, envRng);
  }
}

IterationLog Trainer::iterate() {
  auto start = std::chrono::steady_clock::now();
  const NetworkInfo &info = net.info();
  int B = cfg.batch, T = task.episodeLength(), A = task.numActions(), n = last - first;
  const bool perElement = cfg.episodeRng == TrainConfig::EpisodeRng::PerElement;
  if (perElement) {
    // Each element's generators, seeded from the run's two in element order (every rank draws
    // the same), then its new episode.
    elementEnv.clear();
    elementPolicy.clear();
    for (int b = 0; b < B; ++b)
      elementEnv.emplace_back(envRng.next());
    for (int b = 0; b < B; ++b)
      elementPolicy.emplace_back(policyRng.next());
    for (int b = 0; b < B; ++b)
      elements->resetElement(b, elementEnv[size_t(b)]);
  } else
    task.reset(envRng);
  net.beginEpisode(n); // this rank's elements [first, last)
  std::vector<float> logits(size_t(T) * B * A), values(size_t(T) * B), rewards(size_t(T) * B);
  std::vector<int> actions(size_t(T) * B);
  // Per-element episodes run one element at a time where the engine can (the element's network
  // state stays in its core's cache from step to step; with ranks, each runs its own elements'
  // episodes and they are gathered once). The draws are those stepInLockStep makes, so the
  // episodes are the same either way.
  bool ran = false;
  if (perElement) {
    std::vector<double> probs(size_t(B) * size_t(A)); // each element's, so nothing allocates
    ran = net.runElements(
        T, [&](int b, int t, float *const *x) { elements->observeElement(first + b, t, x[0]); },
        [&](int local, int t, const float *const *y) {
          int b = first + local;
          size_t at = size_t(t) * B + size_t(b);
          float *lg = logits.data() + at * A;
          std::copy(y[logitsOut], y[logitsOut] + A, lg);
          values[at] = y[valueOut][0];
          int a = sampleAction(lg, A, elementPolicy[size_t(b)], probs.data() + size_t(b) * A);
          actions[at] = a;
          rewards[at] = elements->actElement(b, t, a, elementEnv[size_t(b)]);
        });
    if (comm) {
      // Every rank must take the same path (they differ in their collectives): a rank whose
      // engine declined (another DOPA_STAGE_ORDER, say) stops the job here, by name.
      std::string differs = comm->firstDifference(ran ? "episodes per element" : "lock step");
      if (!differs.empty())
        throw std::runtime_error("iteration " + std::to_string(st.iteration) +
                                 ": the ranks ran their episodes differently (" + differs + ")");
      if (ran)
        gatherEpisodes(T, logits, values, actions, rewards);
    }
  }
  if (!ran)
    stepInLockStep(perElement, logits, values, actions, rewards);
  if (comm)
    checkRanksAgree(actions, rewards);
  A2CResult r = a2cLoss(cfg.a2c, T, B, A, logits, values, actions, rewards);
  if (!std::isfinite(r.loss))
    throw std::runtime_error("iteration " + std::to_string(st.iteration) +
                             ": the loss is not finite (" + std::to_string(r.loss) + ")");
  net.zeroGrads();
  std::vector<std::vector<const float *>> grads(size_t(T),
                                                std::vector<const float *>(info.outputs.size()));
  std::vector<const float *const *> gradPtr;
  gradPtr.reserve(size_t(T));
  for (int t = 0; t < T; ++t) {
    grads[size_t(t)][size_t(logitsOut)] = r.dLogits.data() + (size_t(t) * B + first) * A;
    grads[size_t(t)][size_t(valueOut)] = r.dValue.data() + size_t(t) * B + first;
    gradPtr.push_back(grads[size_t(t)].data());
  }
  net.backward(gradPtr.data());
  if (comm) // the whole batch's gradient, the same on every rank
    comm->sum(net.grads(), int64_t(info.numParams));
  double norm = clipGradNorm(net.grads(), info.numParams, cfg.clipNorm);
  if (!std::isfinite(norm))
    throw std::runtime_error("iteration " + std::to_string(st.iteration) +
                             ": the gradient is not finite");
  if (st.iteration >= cfg.burnIn)
    adam.step(net.params(), net.grads());
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return {st.iteration, r.meanReward, r.loss, norm, seconds};
}

std::map<std::string, std::string> Trainer::settings() const {
  std::map<std::string, std::string> out = fingerprint(cfg, net.info(), task);
  if (rngSince > 0)
    out["episode_rng_since"] = std::to_string(rngSince);
  return out;
}

std::string dopa::paramLayoutText(const NetworkInfo &info) {
  std::string out;
  for (const TensorInfo &p : info.params) {
    out += (out.empty() ? "" : ",") + p.name + ":";
    for (size_t d = 0; d < p.shape.size(); ++d)
      out += (d ? "x" : "") + std::to_string(p.shape[d]);
  }
  return out;
}

void Trainer::run(const ProgressFn &progress) {
  namespace fs = std::filesystem;
  if (!cfg.outDir.empty()) {
    fs::create_directories(cfg.outDir);
    writeLog(); // the checkpoint's rows: what a killed run appended after it is dropped
  }
  std::string ckpt = cfg.outDir.empty() ? "" : (fs::path(cfg.outDir) / "checkpoint.st").string();
  while (st.iteration < cfg.iterations) {
    IterationLog log = iterate();
    st.log.push_back(log);
    ++st.iteration;
    if (!cfg.outDir.empty())
      appendLog(log);
    if (progress)
      progress(cfg, log);
    bool due = cfg.checkpointEvery > 0 && st.iteration % cfg.checkpointEvery == 0;
    if (!ckpt.empty() && (due || st.iteration == cfg.iterations))
      saveCheckpoint(ckpt);
  }
}

namespace {
void logRow(std::ostream &os, const IterationLog &l) {
  os << l.iteration << "," << l.meanReward << "," << l.loss << "," << l.gradNorm << "," << l.seconds
     << "\n";
}
} // namespace

void Trainer::writeLog() const {
  std::ostringstream os;
  os << "iteration,mean_reward,loss,grad_norm,seconds\n";
  os.precision(9);
  for (const IterationLog &l : st.log)
    logRow(os, l);
  writeFileAtomically((std::filesystem::path(cfg.outDir) / "log.csv").string(), os.str());
}

void Trainer::appendLog(const IterationLog &log) const {
  // One row per iteration as it completes, so the file can be watched (tail -f, plots); the
  // checkpoint holds the authoritative log, and run() rewrites the file from it on resume.
  std::ofstream out(std::filesystem::path(cfg.outDir) / "log.csv", std::ios::app);
  out.precision(9);
  logRow(out, log);
  if (!out.flush())
    throw std::runtime_error(cfg.outDir + "/log.csv: cannot append: " + std::strerror(errno));
}

void Trainer::saveCheckpoint(const std::string &path) const {
  const NetworkInfo &info = net.info();
  TensorFile f;
  int64_t n = int64_t(info.numParams);
  f.tensors.push_back(StoredTensor::fromFloat("params", {n}, net.params()));
  f.tensors.push_back(StoredTensor::fromFloat("adam.m", {n}, adam.firstMoment().data()));
  f.tensors.push_back(StoredTensor::fromFloat("adam.v", {n}, adam.secondMoment().data()));
  std::vector<double> log;
  for (const IterationLog &l : st.log)
    log.insert(log.end(), {double(l.iteration), l.meanReward, l.loss, l.gradNorm, l.seconds});
  f.tensors.push_back(StoredTensor::fromDouble("log", {int64_t(st.log.size()), 5}, log.data()));
  f.metadata = fingerprint(cfg, info, task);
  f.metadata["param_layout"] = paramLayoutText(info);
  f.metadata["format"] = "dopa-checkpoint";
  f.metadata["version"] = std::to_string(checkpointVersion);
  f.metadata["iteration"] = std::to_string(st.iteration);
  f.metadata["adam_steps"] = std::to_string(adam.steps());
  f.metadata["env_rng"] = rngString(envRng.state());
  f.metadata["policy_rng"] = rngString(policyRng.state());
  if (rngSince > 0)
    f.metadata["episode_rng_since"] = std::to_string(rngSince);
  f.metadata["checksum"] = checkpointChecksum(f);
  writeSafeTensors(path, f);
}

std::string Trainer::checkpointChecksum(const TensorFile &file) { return hex(checksumV2(file)); }

CheckpointState Trainer::readCheckpointState(const TensorFile &f, const std::string &path) {
  auto meta = [&](const std::string &key) -> const std::string & {
    auto it = f.metadata.find(key);
    if (it == f.metadata.end())
      throw DataError(path + ": __metadata__." + key + ": missing (not a dopa checkpoint?)");
    return it->second;
  };
  if (meta("format") != "dopa-checkpoint")
    throw DataError(path + ": __metadata__.format: '" + meta("format") +
                    "' is not a dopa checkpoint");
  CheckpointState s;
  for (int v = oldestCheckpointVersion; v <= checkpointVersion; ++v)
    if (meta("version") == std::to_string(v))
      s.version = v;
  if (s.version == 0)
    throw DataError(path + ": __metadata__.version: checkpoint version " + meta("version") +
                    ", this dopa reads versions " + std::to_string(oldestCheckpointVersion) +
                    " to " + std::to_string(checkpointVersion));
  if (s.version == 1 && hex(checksumV1(f)) != meta("checksum"))
    throw DataError(path +
                    ": __metadata__.checksum: the data does not match its checksum (corrupt file)");
  if (s.version >= 2 && hex(checksumV2(f)) != meta("checksum"))
    throw DataError(path + ": __metadata__.checksum: the checkpoint's data or metadata does not "
                           "match its checksum (corrupt file)");
  s.iteration = metadataCount(meta("iteration"), path, "iteration");
  s.adamSteps = metadataCount(meta("adam_steps"), path, "adam_steps");
  s.envRng = parseRng(meta("env_rng"), path, "env_rng");
  s.policyRng = parseRng(meta("policy_rng"), path, "policy_rng");
  if (auto it = f.metadata.find("episode_rng"); it != f.metadata.end()) {
    if (it->second == "per-element")
      s.episodeRng = TrainConfig::EpisodeRng::PerElement;
    else if (it->second != "batch")
      throw DataError(path + ": __metadata__.episode_rng: '" + it->second +
                      "' is neither 'batch' nor 'per-element'");
  }
  if (auto it = f.metadata.find("episode_rng_since"); it != f.metadata.end()) {
    // Written only by a run that switched at a checkpoint and then ran on, so 0 < since <
    // iteration.
    s.episodeRngSince = metadataCount(it->second, path, "episode_rng_since");
    if (!f.metadata.count("episode_rng"))
      throw DataError(path + ": __metadata__.episode_rng_since: recorded without episode_rng");
    if (s.episodeRngSince <= 0 || s.episodeRngSince >= s.iteration)
      throw DataError(path + ": __metadata__.episode_rng_since: " + it->second +
                      " is not between 0 and the checkpoint's iteration " +
                      std::to_string(s.iteration) + " (exclusive)");
  }

  const StoredTensor *log = f.find("log");
  if (!log || log->dtype != DType::F64 || log->shape.size() != 2 || log->shape[1] != 5 ||
      log->shape[0] != s.iteration)
    throw DataError(path + ": log: expected F64 [" + std::to_string(s.iteration) + ", 5]");
  return s;
}

void Trainer::resume(const std::string &path) {
  TensorFile f = readSafeTensors(path);
  CheckpointState state = readCheckpointState(f, path);
  // The fingerprint is compared with the checkpoint's own scheme: a run started before
  // per-element episodes continues with the batch's generators, bit-exactly, unless this run asks
  // for a scheme explicitly (below, after every check).
  TrainConfig adopted = cfg;
  adopted.episodeRng = state.episodeRng;
  std::map<std::string, std::string> defaults = version1Defaults(net.info());
  std::map<std::string, std::string> mine = fingerprint(adopted, net.info(), task);
  // The task and the network first: another task's settings would otherwise be reported as
  // whichever of them comes first in name order.
  std::vector<std::pair<std::string, std::string>> ordered;
  for (const char *first : {"task", "network"})
    ordered.emplace_back(first, mine.at(first));
  for (const auto &entry : mine)
    if (entry.first != "task" && entry.first != "network")
      ordered.push_back(entry);
  for (const auto &[key, value] : ordered) {
    const std::string *had = recorded(f, state, key, path, defaults);
    if (had && *had != value) {
      std::string msg = path;
      msg += ": __metadata__." + key + ": the checkpoint has '";
      msg += *had;
      msg += "' but this run has '" + value + "'" + mismatchHint(key, *had);
      throw DataError(msg);
    }
  }
  if (askedEpisodeRng == TrainConfig::EpisodeRng::Auto &&
      state.episodeRng == TrainConfig::EpisodeRng::PerElement && !elements)
    throw DataError(path +
                    ": __metadata__.episode_rng: the checkpoint's episodes drew per element, "
                    "and the " +
                    cfg.task +
                    " task does not step single elements; pass --episode-rng batch to continue "
                    "it with batch episodes");
  int64_t n = int64_t(net.info().numParams);
  for (const char *name : {"params", "adam.m", "adam.v"}) {
    const StoredTensor *t = f.find(name);
    if (!t || t->dtype != DType::F32 || t->shape != std::vector<int64_t>{n})
      throw DataError(path + ": " + name + ": missing or not F32 [" + std::to_string(n) + "]");
  }
  // Every value is checked before any is taken: a bad one would surface as a NaN loss later.
  std::vector<float> params = f.find("params")->toFloat();
  std::vector<float> firstMoment = f.find("adam.m")->toFloat();
  std::vector<float> secondMoment = f.find("adam.v")->toFloat();
  std::vector<double> rows = f.find("log")->toDouble();
  requireFiniteValues(params, path, "params");
  requireFiniteValues(firstMoment, path, "adam.m");
  requireFiniteValues(secondMoment, path, "adam.v", /*nonNegative=*/true);
  requireFiniteValues(rows, path, "log");
  for (int64_t i = 0; i < state.iteration; ++i)
    if (double it = rows[size_t(i) * 5]; !isCountValue(it))
      throw DataError(path + ": log: row " + std::to_string(i) + " has iteration " +
                      std::to_string(it) + ", not a count");
  std::copy(params.begin(), params.end(), net.params());
  adam.firstMoment() = std::move(firstMoment);
  adam.secondMoment() = std::move(secondMoment);
  adam.setSteps(state.adamSteps);
  envRng.setState(state.envRng);
  policyRng.setState(state.policyRng);
  // Auto keeps the checkpoint's episodes; a scheme asked for explicitly takes over from here.
  cfg.episodeRng = state.episodeRng;
  rngSince = state.episodeRngSince;
  rngSwitched = askedEpisodeRng != TrainConfig::EpisodeRng::Auto &&
                askedEpisodeRng != state.episodeRng && state.iteration > 0;
  if (askedEpisodeRng != TrainConfig::EpisodeRng::Auto)
    cfg.episodeRng = askedEpisodeRng;
  if (rngSwitched)
    rngSince = state.iteration;
  st = TrainState{};
  st.iteration = state.iteration;
  for (int64_t i = 0; i < st.iteration; ++i) {
    const double *r = rows.data() + i * 5;
    st.log.push_back({int64_t(r[0]), r[1], r[2], r[3], r[4]});
  }
}

namespace {

/// Who holds the lock file `fd` ("pid N on host H"), as it recorded itself.
std::string lockHolder(int fd) {
  char buf[512] = {};
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  std::istringstream in(std::string(buf, n > 0 ? size_t(n) : 0));
  long long pid = 0;
  std::string host;
  if (!(in >> pid >> host))
    return "pid unknown: it has not recorded itself yet";
  return "pid " + std::to_string(pid) + " on host " + host;
}

std::string hostName() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || !buf[0])
    return "unknown";
  return buf;
}

} // namespace

void dopa::requireRunFolder(const std::string &dir) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw DataError(dir + ": no such run folder; --resume continues the checkpoint of an earlier "
                          "run in --out");
}

RunLock::RunLock(const std::string &dir) : path((std::filesystem::path(dir) / ".lock").string()) {
  std::filesystem::create_directories(dir);
  // A holder removes the file as it lets go; a file opened just before that is no longer the one
  // at `path`, so lock it again, as it is now.
  for (int attempt = 0; attempt < 100; ++attempt) {
    int f = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (f < 0)
      throw std::runtime_error(path + ": cannot create the lock file: " + std::strerror(errno));
    if (flock(f, LOCK_EX | LOCK_NB) != 0) {
      int err = errno;
      std::string holder = err == EWOULDBLOCK ? lockHolder(f) : "";
      ::close(f);
      if (err == EWOULDBLOCK) {
        std::string msg = dir;
        msg += " is in use by another dopa train (";
        msg += holder;
        msg += "); wait for it or choose another --out";
        throw RunLockError(msg);
      }
      throw std::runtime_error(path + ": cannot lock: " + std::strerror(err));
    }
    struct stat opened{};
    struct stat named{};
    if (fstat(f, &opened) == 0 && ::stat(path.c_str(), &named) == 0 &&
        opened.st_dev == named.st_dev && opened.st_ino == named.st_ino) {
      fd = f;
      std::string record = std::to_string(getpid()) + " " + hostName() + "\n";
      bool written = ftruncate(fd, 0) == 0 &&
                     pwrite(fd, record.data(), record.size(), 0) == ssize_t(record.size());
      (void)written; // the record only names the holder in messages; the lock is what counts
      return;
    }
    ::close(f);
  }
  throw std::runtime_error(path + ": cannot lock: the lock file keeps being replaced");
}

RunLock::~RunLock() {
  if (fd < 0)
    return;
  // Removed while still held: whoever opened it meanwhile finds it replaced and tries again.
  ::unlink(path.c_str());
  ::close(fd);
}

bool dopa::plotLearningCurve(
    const std::vector<std::pair<std::string, std::vector<IterationLog>>> &runs,
    const std::string &pngPath, const std::string &title) {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(pngPath).parent_path();
  std::ostringstream script;
  script << "set title " << gnuplotQuoted(title) << "\nset xlabel 'iteration (batch of episodes)'\n"
         << "set ylabel 'mean reward per episode (moving average of 20 iterations)'\n"
         << "set key left top\nset grid\n"
         << "set datafile separator ','\nplot ";
  for (size_t i = 0; i < runs.size(); ++i) {
    std::string data = (dir / (".curve-" + std::to_string(i) + ".csv")).string();
    std::ofstream out(data);
    // Moving average over 20 iterations for readability; the raw values are in log.csv.
    const auto &log = runs[i].second;
    for (size_t k = 0; k < log.size(); ++k) {
      double sum = 0;
      size_t from = k >= 19 ? k - 19 : 0;
      for (size_t j = from; j <= k; ++j)
        sum += log[j].meanReward;
      out << log[k].iteration << "," << log[k].meanReward << "," << sum / double(k - from + 1)
          << "\n";
    }
    script << (i ? ", " : "") << gnuplotQuoted(data) << " using 1:3 with lines lw 2 title "
           << gnuplotQuoted(runs[i].first);
  }
  script << "\n";
  bool ok = runGnuplot(script.str(), pngPath, "log.csv");
  for (size_t i = 0; i < runs.size(); ++i)
    fs::remove(dir / (".curve-" + std::to_string(i) + ".csv"));
  return ok;
}

int64_t dopa::metadataCount(const std::string &s, const std::string &path,
                            const std::string &field) {
  int64_t v = 0;
  const char *end = s.data() + s.size();
  auto [stop, ec] = std::from_chars(s.data(), end, v);
  if (s.empty() || ec != std::errc() || stop != end || v < 0)
    throw DataError(path + ": __metadata__." + field + ": '" + s + "' is not a count");
  return v;
}

double dopa::metadataReal(const std::string &s, const std::string &path, const std::string &field) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(s, &used);
  } catch (const std::exception &) {
    used = 0;
  }
  if (s.empty() || used != s.size() || !std::isfinite(v))
    throw DataError(path + ": __metadata__." + field + ": '" + s + "' is not a number");
  return v;
}

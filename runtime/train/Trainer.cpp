//===- Trainer.cpp - Meta-training on the cue-reward task with A2C -------===//
//
// Implements the training loop, checkpoints (safetensors with a version, a configuration
// fingerprint and an FNV-1a checksum, written atomically) and the gnuplot learning curve.
//
//===----------------------------------------------------------------------===//
#include "dopa/train/Trainer.h"

#include "dopa/runtime/SafeTensors.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

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

/// FNV-1a over the tensors' names and bytes, in name order (files list them in any order).
uint64_t fnv1a(const std::vector<StoredTensor> &tensors) {
  std::vector<const StoredTensor *> sorted;
  sorted.reserve(tensors.size());
  for (const StoredTensor &t : tensors)
    sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [](const StoredTensor *a, const StoredTensor *b) { return a->name < b->name; });
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const StoredTensor *tp : sorted) {
    const StoredTensor &t = *tp;
    for (char c : t.name)
      h = (h ^ uint8_t(c)) * 0x100000001b3ULL;
    for (uint8_t byte : t.bytes)
      h = (h ^ byte) * 0x100000001b3ULL;
  }
  return h;
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

/// What must agree between a checkpoint and the run that resumes it.
std::map<std::string, std::string> fingerprint(const TrainConfig &c, const NetworkInfo &info) {
  auto num = [](double v) {
    std::ostringstream os;
    os.precision(17);
    os << v;
    return os.str();
  };
  return {{"network", info.name},
          {"num_params", std::to_string(info.numParams)},
          {"description", c.description},
          {"batch", std::to_string(c.batch)},
          {"episode_length", std::to_string(c.task.episodeLength)},
          {"num_cues", std::to_string(c.task.numCues)},
          {"cues_per_trial", std::to_string(c.task.cuesPerTrial)},
          {"seed", std::to_string(c.seed)},
          {"lr", num(c.adam.lr)},
          {"adam_eps", num(c.adam.eps)},
          {"clip_norm", num(c.clipNorm)},
          {"burn_in", std::to_string(c.burnIn)},
          {"gamma", num(c.a2c.gamma)},
          {"bent", num(c.a2c.entropyWeight)},
          {"blossv", num(c.a2c.valueWeight)},
          {"baseline",
           c.a2c.baseline == A2CConfig::Baseline::FirstElement ? "first-element" : "per-element"}};
}

} // namespace

Trainer::Trainer(Network &net, TrainConfig config)
    : net(net), cfg(std::move(config)), task(cfg.task, cfg.batch),
      adam(cfg.adam, net.info().numParams), envRng(cfg.seed * 2 + 1), policyRng(cfg.seed * 2 + 2) {
  const NetworkInfo &info = net.info();
  if (info.inputs.size() != 1 || info.inputs[0].numel() != cfg.task.inputSize() ||
      info.inputs[0].isInt)
    throw std::invalid_argument("network '" + info.name + "' must take one real input of " +
                                std::to_string(cfg.task.inputSize()) +
                                " values for the cue-reward task");
  logitsOut = info.findOutput("logits");
  valueOut = info.findOutput("value");
  if (logitsOut < 0 || valueOut < 0 || info.outputs[size_t(logitsOut)].numel() != 2 ||
      info.outputs[size_t(valueOut)].numel() != 1)
    throw std::invalid_argument("network '" + info.name +
                                "' needs outputs 'logits' [2] and 'value' [1] for A2C");
}

void Trainer::initFresh() {
  initParams(net.info(), net.params(), cfg.seed);
  st = TrainState{};
}

IterationLog Trainer::iterate() {
  auto start = std::chrono::steady_clock::now();
  const NetworkInfo &info = net.info();
  int B = cfg.batch, T = cfg.task.episodeLength, A = CueRewardConfig::numActions;
  task.reset(envRng);
  net.beginEpisode(B);
  std::vector<float> x(size_t(B) * size_t(cfg.task.inputSize()));
  std::vector<std::vector<float>> outBuf;
  std::vector<float *> outPtr;
  outBuf.reserve(info.outputs.size());
  outPtr.reserve(info.outputs.size());
  for (const TensorInfo &o : info.outputs)
    outBuf.emplace_back(size_t(B) * size_t(o.numel()));
  for (auto &buf : outBuf)
    outPtr.push_back(buf.data());
  std::vector<float> logits(size_t(T) * B * A), values(size_t(T) * B), rewards(size_t(T) * B);
  std::vector<int> actions(size_t(T) * B);
  double probs[CueRewardConfig::numActions];
  for (int t = 0; t < T; ++t) {
    task.observe(x.data());
    const float *in[] = {x.data()};
    net.step(in, outPtr.data());
    std::copy(outBuf[size_t(logitsOut)].begin(), outBuf[size_t(logitsOut)].end(),
              logits.begin() + long(size_t(t) * B * A));
    std::copy(outBuf[size_t(valueOut)].begin(), outBuf[size_t(valueOut)].end(),
              values.begin() + long(size_t(t) * B));
    for (int b = 0; b < B; ++b) {
      softmax(outBuf[size_t(logitsOut)].data() + size_t(b) * A, A, probs);
      double u = policyRng.uniform(), acc = 0;
      int a = A - 1;
      for (int k = 0; k < A; ++k) {
        acc += probs[k];
        if (u < acc) {
          a = k;
          break;
        }
      }
      actions[size_t(t) * B + size_t(b)] = a;
    }
    task.act(actions.data() + size_t(t) * B, rewards.data() + size_t(t) * B, envRng);
  }
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
    grads[size_t(t)][size_t(logitsOut)] = r.dLogits.data() + size_t(t) * B * A;
    grads[size_t(t)][size_t(valueOut)] = r.dValue.data() + size_t(t) * B;
    gradPtr.push_back(grads[size_t(t)].data());
  }
  net.backward(gradPtr.data());
  double norm = clipGradNorm(net.grads(), info.numParams, cfg.clipNorm);
  if (!std::isfinite(norm))
    throw std::runtime_error("iteration " + std::to_string(st.iteration) +
                             ": the gradient is not finite");
  if (st.iteration >= cfg.burnIn)
    adam.step(net.params(), net.grads());
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return {st.iteration, r.meanReward, r.loss, norm, seconds};
}

void Trainer::run(const ProgressFn &progress) {
  namespace fs = std::filesystem;
  if (!cfg.outDir.empty())
    fs::create_directories(cfg.outDir);
  std::string ckpt = cfg.outDir.empty() ? "" : (fs::path(cfg.outDir) / "checkpoint.st").string();
  while (st.iteration < cfg.iterations) {
    IterationLog log = iterate();
    st.log.push_back(log);
    ++st.iteration;
    if (progress)
      progress(cfg, log);
    bool due = cfg.checkpointEvery > 0 && st.iteration % cfg.checkpointEvery == 0;
    if (!ckpt.empty() && (due || st.iteration == cfg.iterations)) {
      saveCheckpoint(ckpt);
      writeLog();
    }
  }
}

void Trainer::writeLog() const {
  std::ostringstream os;
  os << "iteration,mean_reward,loss,grad_norm,seconds\n";
  os.precision(9);
  for (const IterationLog &l : st.log)
    os << l.iteration << "," << l.meanReward << "," << l.loss << "," << l.gradNorm << ","
       << l.seconds << "\n";
  writeFileAtomically((std::filesystem::path(cfg.outDir) / "log.csv").string(), os.str());
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
  f.metadata = fingerprint(cfg, info);
  f.metadata["format"] = "dopa-checkpoint";
  f.metadata["version"] = std::to_string(checkpointVersion);
  f.metadata["iteration"] = std::to_string(st.iteration);
  f.metadata["adam_steps"] = std::to_string(adam.steps());
  f.metadata["env_rng"] = rngString(envRng.state());
  f.metadata["policy_rng"] = rngString(policyRng.state());
  f.metadata["checksum"] = hex(fnv1a(f.tensors));
  writeSafeTensors(path, f);
}

void Trainer::resume(const std::string &path) {
  TensorFile f = readSafeTensors(path);
  auto meta = [&](const std::string &key) -> const std::string & {
    auto it = f.metadata.find(key);
    if (it == f.metadata.end())
      throw DataError(path + ": __metadata__." + key + ": missing (not a dopa checkpoint?)");
    return it->second;
  };
  if (meta("format") != "dopa-checkpoint")
    throw DataError(path + ": __metadata__.format: '" + meta("format") +
                    "' is not a dopa checkpoint");
  if (meta("version") != std::to_string(checkpointVersion))
    throw DataError(path + ": __metadata__.version: checkpoint version " + meta("version") +
                    ", this dopa reads version " + std::to_string(checkpointVersion));
  if (hex(fnv1a(f.tensors)) != meta("checksum"))
    throw DataError(path +
                    ": __metadata__.checksum: the data does not match its checksum (corrupt file)");
  // Settings added to the fingerprint after checkpoints of this version were written: an older
  // checkpoint was made with the value every run had then.
  static const std::map<std::string, std::string> addedLater = {{"cues_per_trial", "2"}};
  for (const auto &[key, value] : fingerprint(cfg, net.info())) {
    auto later = addedLater.find(key);
    const std::string &had =
        later != addedLater.end() && !f.metadata.count(key) ? later->second : meta(key);
    if (had != value) {
      std::string msg = path;
      msg += ": __metadata__." + key + ": the checkpoint has '";
      msg += had;
      msg += "' but this run has '" + value + "'";
      throw DataError(msg);
    }
  }
  int64_t n = int64_t(net.info().numParams);
  for (const char *name : {"params", "adam.m", "adam.v"}) {
    const StoredTensor *t = f.find(name);
    if (!t || t->dtype != DType::F32 || t->shape != std::vector<int64_t>{n})
      throw DataError(path + ": " + name + ": missing or not F32 [" + std::to_string(n) + "]");
  }
  std::vector<float> params = f.find("params")->toFloat();
  std::copy(params.begin(), params.end(), net.params());
  adam.firstMoment() = f.find("adam.m")->toFloat();
  adam.secondMoment() = f.find("adam.v")->toFloat();
  adam.setSteps(std::stoll(meta("adam_steps")));
  envRng.setState(parseRng(meta("env_rng"), path, "env_rng"));
  policyRng.setState(parseRng(meta("policy_rng"), path, "policy_rng"));
  st = TrainState{};
  st.iteration = std::stoll(meta("iteration"));
  const StoredTensor *log = f.find("log");
  if (!log || log->shape.size() != 2 || log->shape[1] != 5 || log->shape[0] != st.iteration)
    throw DataError(path + ": log: expected [" + std::to_string(st.iteration) + ", 5]");
  std::vector<double> rows = log->toDouble();
  for (int64_t i = 0; i < st.iteration; ++i) {
    const double *r = rows.data() + i * 5;
    st.log.push_back({int64_t(r[0]), r[1], r[2], r[3], r[4]});
  }
}

bool dopa::plotLearningCurve(
    const std::vector<std::pair<std::string, std::vector<IterationLog>>> &runs,
    const std::string &pngPath, const std::string &title) {
  namespace fs = std::filesystem;
  if (std::system("command -v gnuplot > /dev/null 2>&1") != 0) {
    std::fprintf(stderr, "dopa: gnuplot not found; no plot written (log.csv has the data)\n");
    return false;
  }
  fs::path dir = fs::path(pngPath).parent_path();
  std::ostringstream script;
  script << "set terminal pngcairo size 960,540 font 'DejaVu Sans,11'\n"
         << "set output '" << pngPath << "'\n"
         << "set title '" << title << "'\nset xlabel 'iteration (batch of episodes)'\n"
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
    script << (i ? ", " : "") << "'" << data << "' using 1:3 with lines lw 2 title '"
           << runs[i].first << "'";
  }
  script << "\n";
  std::string scriptPath = (dir / ".curve.gp").string();
  std::ofstream(scriptPath) << script.str();
  bool ok = std::system(("gnuplot '" + scriptPath + "'").c_str()) == 0;
  fs::remove(scriptPath);
  for (size_t i = 0; i < runs.size(); ++i)
    fs::remove(dir / (".curve-" + std::to_string(i) + ".csv"));
  return ok;
}

//===- TrainerTest.cpp - Training loop, checkpoints and bit-exact resume --===//
//
// A run interrupted after a checkpoint and resumed ends with exactly the parameters of an
// uninterrupted run; corrupt, truncated, wrong-version or mismatched checkpoints (the data or any
// metadata field, the thread count, the engine) are rejected with the file and field named;
// version-1 checkpoints still resume; the optimizer does not step during the burn-in; a run folder
// is locked against a second run.
//
//===----------------------------------------------------------------------===//
#include "TestUtil.h"

#include "dopa/compiler/Pipeline.h"
#include "dopa/generic/Executor.h"
#include "dopa/runtime/SafeTensors.h"
#include "dopa/train/CueReward.h"
#include "dopa/train/Trainer.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sys/stat.h>
#include <unistd.h>

using namespace dopa;
namespace fs = std::filesystem;

namespace {
std::unique_ptr<GenericNetwork> makeNet(const char *variant) {
  Frontend frontend;
  std::string path = std::string(DOPA_SOURCE_DIR "/examples/cue_reward/") + variant + ".dopa";
  auto compiled = compileSpec(frontend, path, {{"H", 6}}, "");
  REQUIRE(compiled);
  return std::make_unique<GenericNetwork>(std::move(compiled->graphs));
}

/// The cue-reward task of the tests: 15-step episodes.
CueRewardConfig smallTask() {
  CueRewardConfig t;
  t.episodeLength = 15;
  return t;
}

/// A trainer with its task (the trainer holds a reference to it).
struct Run {
  CueRewardTask task;
  Trainer trainer;
  Run(Network &net, const TrainConfig &config, const CueRewardConfig &taskConfig = smallTask())
      : task(taskConfig, config.batch), trainer(net, task, config) {}
};

TrainConfig smallConfig(const std::string &dir, int64_t iterations) {
  TrainConfig c;
  c.batch = 3;
  c.iterations = iterations;
  c.burnIn = 2;
  c.adam.lr = 1e-2;
  c.seed = 9;
  c.checkpointEvery = 3;
  c.outDir = dir;
  c.description = "test";
  c.engine = "generic";
  return c;
}

std::string freshDir(const std::string &name) { return test::scratchDir("trainer-" + name); }

std::string resumeError(const std::string &dir, const TrainConfig &cfg,
                        const CueRewardConfig &taskConfig = smallTask()) {
  auto net = makeNet("modul");
  Run run(*net, cfg, taskConfig);
  Trainer &t = run.trainer;
  try {
    t.resume(dir + "/checkpoint.st");
  } catch (const DataError &e) {
    return e.what();
  }
  return "";
}

std::string resumeError(const std::string &dir) { return resumeError(dir, smallConfig(dir, 6)); }

/// A checkpoint's metadata changed on purpose: record the checksum that matches it.
void reseal(TensorFile &f) { f.metadata["checksum"] = Trainer::checkpointChecksum(f); }

/// The version-1 checksum, written out here independently: FNV-1a over each tensor's name and bytes
/// in name order; the metadata is not covered.
std::string version1Checksum(const TensorFile &f) {
  std::vector<const StoredTensor *> sorted;
  for (const StoredTensor &t : f.tensors)
    sorted.push_back(&t);
  std::sort(sorted.begin(), sorted.end(),
            [](const StoredTensor *a, const StoredTensor *b) { return a->name < b->name; });
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const StoredTensor *t : sorted) {
    for (char c : t->name)
      h = (h ^ uint8_t(c)) * 0x100000001b3ULL;
    for (uint8_t byte : t->bytes)
      h = (h ^ byte) * 0x100000001b3ULL;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

/// Turn a current checkpoint into one as version 1 wrote it: without the settings added in version
/// 2, and with the data-only checksum.
void makeVersion1(TensorFile &f) {
  for (const char *key : {"threads", "engine", "adam_beta1", "adam_beta2", "weight_decay",
                          "cue_size", "reward", "wrong_penalty", "flip_prob"})
    f.metadata.erase(key);
  f.metadata["version"] = "1";
  f.metadata["checksum"] = version1Checksum(f);
}

/// One decimal or hex digit of `value` changed (the last one).
std::string flipDigit(std::string value) {
  size_t at = value.find_last_of("0123456789abcdef");
  REQUIRE(at != std::string::npos);
  value[at] = value[at] == '0' ? '1' : '0';
  return value;
}

const char *const checksumMessage =
    "checkpoint.st: __metadata__.checksum: the checkpoint's data or metadata does not match its "
    "checksum (corrupt file)";
} // namespace

TEST_CASE("a resumed run continues bit-exactly as an uninterrupted one") {
  std::string straight = freshDir("straight"), split = freshDir("split");
  auto a = makeNet("modul");
  Run taRun(*a, smallConfig(straight, 6));
  Trainer &ta = taRun.trainer;
  ta.initFresh();
  ta.run();
  std::vector<float> expected(a->params(), a->params() + a->info().numParams);

  {
    auto b = makeNet("modul");
    Run tbRun(*b, smallConfig(split, 3)); // "interrupted" after the checkpoint at iteration 3
    Trainer &tb = tbRun.trainer;
    tb.initFresh();
    tb.run();
  }
  auto c = makeNet("modul");
  Run tcRun(*c, smallConfig(split, 6));
  Trainer &tc = tcRun.trainer;
  tc.resume(split + "/checkpoint.st");
  CHECK(tc.state().iteration == 3);
  tc.run();
  std::vector<float> resumed(c->params(), c->params() + c->info().numParams);
  CHECK(resumed == expected);
  REQUIRE(tc.state().log.size() == 6);
  for (size_t i = 0; i < 6; ++i)
    CHECK(tc.state().log[i].meanReward == ta.state().log[i].meanReward);
  CHECK(fs::exists(split + "/log.csv"));
}

TEST_CASE("a run of batch episodes resumes with batch episodes, bit-exactly") {
  // Runs from before per-element episodes (their checkpoints have no episode_rng) and runs that
  // chose batch episodes keep drawing for the batch when resumed, though a new run of the task
  // would draw per element.
  std::string straight = freshDir("batch-straight"), split = freshDir("batch-split");
  TrainConfig batchCfg = smallConfig(straight, 6);
  batchCfg.episodeRng = TrainConfig::EpisodeRng::Batch;
  auto a = makeNet("modul");
  Run taRun(*a, batchCfg);
  taRun.trainer.initFresh();
  taRun.trainer.run();
  CHECK(taRun.trainer.settings().at("episode_rng") == "batch");
  {
    auto b = makeNet("modul");
    TrainConfig cfg = batchCfg;
    cfg.outDir = split;
    cfg.iterations = 3;
    Run tbRun(*b, cfg);
    tbRun.trainer.initFresh();
    tbRun.trainer.run();
  }
  std::string path = split + "/checkpoint.st";
  TensorFile f = readSafeTensors(path);
  CHECK(f.metadata.at("episode_rng") == "batch");
  f.metadata.erase("episode_rng"); // as a checkpoint written before the entry
  reseal(f);
  writeSafeTensors(path, f);
  auto c = makeNet("modul");
  Run tcRun(*c, smallConfig(split, 6)); // Auto: per-element for a new run of this task
  CHECK(tcRun.trainer.settings().at("episode_rng") == "per-element");
  tcRun.trainer.resume(path);
  CHECK(tcRun.trainer.settings().at("episode_rng") == "batch");
  tcRun.trainer.run();
  CHECK(std::vector<float>(c->params(), c->params() + c->info().numParams) ==
        std::vector<float>(a->params(), a->params() + a->info().numParams));
  REQUIRE(tcRun.trainer.state().log.size() == 6);
  for (size_t i = 0; i < 6; ++i)
    CHECK(tcRun.trainer.state().log[i].meanReward == taRun.trainer.state().log[i].meanReward);
  // A fresh run draws per element: other episodes from the same seed.
  auto d = makeNet("modul");
  Run tdRun(*d, smallConfig(freshDir("element-straight"), 6));
  tdRun.trainer.initFresh();
  tdRun.trainer.run();
  CHECK(std::vector<float>(d->params(), d->params() + d->info().numParams) !=
        std::vector<float>(a->params(), a->params() + a->info().numParams));
}

namespace {
/// The network's parameters, copied.
std::vector<float> paramsOf(Network &net) {
  return std::vector<float>(net.params(), net.params() + net.info().numParams);
}

/// Train a fresh run of `scheme` episodes in `dir` to `iterations`.
void trainFresh(Network &net, const std::string &dir, int64_t iterations,
                TrainConfig::EpisodeRng scheme) {
  TrainConfig cfg = smallConfig(dir, iterations);
  cfg.episodeRng = scheme;
  Run run(net, cfg);
  run.trainer.initFresh();
  run.trainer.run();
}
} // namespace

TEST_CASE("an explicit episode scheme on resume switches the run from the checkpoint on") {
  using Scheme = TrainConfig::EpisodeRng;
  // Batch episodes to iteration 3, then per element: once to 6 in one go, once to 5 and resumed
  // (with Auto, which keeps the switched scheme) to 6. Both end alike.
  std::string once = freshDir("switch-once"), twice = freshDir("switch-twice");
  auto a = makeNet("modul"), b = makeNet("modul");
  trainFresh(*a, once, 3, Scheme::Batch);
  trainFresh(*b, twice, 3, Scheme::Batch);
  TrainConfig perElement = smallConfig(once, 6);
  perElement.episodeRng = Scheme::PerElement;
  Run aRun(*a, perElement);
  aRun.trainer.resume(once + "/checkpoint.st");
  CHECK(aRun.trainer.settings().at("episode_rng") == "per-element");
  CHECK(aRun.trainer.episodeRngSince() == 3);
  CHECK(aRun.trainer.settings().at("episode_rng_since") == "3");
  aRun.trainer.run();
  {
    TrainConfig cfg = perElement;
    cfg.outDir = twice;
    cfg.iterations = 5;
    Run bRun(*b, cfg);
    bRun.trainer.resume(twice + "/checkpoint.st");
    bRun.trainer.run();
  }
  TensorFile f = readSafeTensors(twice + "/checkpoint.st");
  CHECK(f.metadata.at("episode_rng") == "per-element");
  CHECK(f.metadata.at("episode_rng_since") == "3");
  Run cRun(*b, smallConfig(twice, 6));
  cRun.trainer.resume(twice + "/checkpoint.st");
  CHECK(cRun.trainer.settings().at("episode_rng") == "per-element");
  CHECK(cRun.trainer.episodeRngSince() == 3);
  CHECK_FALSE(cRun.trainer.episodeRngSwitched());
  cRun.trainer.run();
  CHECK(paramsOf(*a) == paramsOf(*b));
  REQUIRE(cRun.trainer.state().log.size() == 6);
  for (size_t i = 0; i < 6; ++i)
    CHECK(cRun.trainer.state().log[i].meanReward == aRun.trainer.state().log[i].meanReward);
  // The switch changed the episodes: batch episodes all the way end elsewhere.
  auto d = makeNet("modul");
  trainFresh(*d, freshDir("switch-none"), 6, Scheme::Batch);
  CHECK(paramsOf(*d) != paramsOf(*a));

  SUBCASE("asking for the checkpoint's own scheme switches nothing") {
    TrainConfig cfg = smallConfig(freshDir("switch-same"), 6);
    auto e = makeNet("modul");
    trainFresh(*e, cfg.outDir, 3, Scheme::Batch);
    cfg.episodeRng = Scheme::Batch;
    Run eRun(*e, cfg);
    eRun.trainer.resume(cfg.outDir + "/checkpoint.st");
    CHECK(eRun.trainer.episodeRngSince() == 0);
    CHECK_FALSE(eRun.trainer.episodeRngSwitched());
    CHECK(eRun.trainer.settings().count("episode_rng_since") == 0);
    eRun.trainer.run();
    CHECK(readSafeTensors(cfg.outDir + "/checkpoint.st").metadata.count("episode_rng_since") == 0);
    CHECK(paramsOf(*e) == paramsOf(*d));
  }
  SUBCASE("and back to batch episodes") {
    Run eRun(*b, [&] {
      TrainConfig cfg = smallConfig(twice, 8);
      cfg.episodeRng = Scheme::Batch;
      return cfg;
    }());
    eRun.trainer.resume(twice + "/checkpoint.st");
    CHECK(eRun.trainer.settings().at("episode_rng") == "batch");
    CHECK(eRun.trainer.episodeRngSince() == 6);
    CHECK(eRun.trainer.episodeRngSwitched());
  }
  SUBCASE("a bad episode_rng_since is named") {
    for (const char *bad : {"6", "7", "0", "-1", "three"}) {
      CAPTURE(bad);
      TensorFile g = readSafeTensors(twice + "/checkpoint.st");
      g.metadata["episode_rng_since"] = bad;
      reseal(g);
      writeSafeTensors(twice + "/checkpoint.st", g);
      CHECK(resumeError(twice).find("__metadata__.episode_rng_since") != std::string::npos);
    }
    TensorFile g = readSafeTensors(twice + "/checkpoint.st");
    g.metadata["episode_rng_since"] = "3";
    g.metadata.erase("episode_rng");
    reseal(g);
    writeSafeTensors(twice + "/checkpoint.st", g);
    CHECK(resumeError(twice).find("__metadata__.episode_rng_since: recorded without episode_rng") !=
          std::string::npos);
  }
}

namespace {
/// The cue-reward task without per-element stepping (as a plug-in built before ElementSteps).
class LockStepOnly final : public EpisodicTask {
public:
  explicit LockStepOnly(int batch) : inner(smallTask(), batch) {}
  int batch() const override { return inner.batch(); }
  int observationSize() const override { return inner.observationSize(); }
  int numActions() const override { return inner.numActions(); }
  int episodeLength() const override { return inner.episodeLength(); }
  void reset(Rng &rng) override { inner.reset(rng); }
  void observe(float *x) const override { inner.observe(x); }
  void act(const int *actions, float *rewards, Rng &rng) override {
    inner.act(actions, rewards, rng);
  }
  std::vector<std::pair<std::string, std::string>> settings() const override {
    return inner.settings();
  }

private:
  CueRewardTask inner;
};
} // namespace

TEST_CASE("a task without per-element stepping runs batch episodes") {
  TrainConfig cfg = smallConfig(freshDir("lockstep-only"), 3);
  auto a = makeNet("modul");
  LockStepOnly task(cfg.batch);
  CHECK(elementSteps(task) == nullptr);
  Trainer t(*a, task, cfg);
  CHECK(t.settings().at("episode_rng") == "batch");
  t.initFresh();
  t.run();
  // The same episodes as the cue-reward task itself with batch episodes.
  TrainConfig batchCfg = smallConfig(freshDir("lockstep-batch"), 3);
  batchCfg.episodeRng = TrainConfig::EpisodeRng::Batch;
  auto b = makeNet("modul");
  Run run(*b, batchCfg);
  run.trainer.initFresh();
  run.trainer.run();
  CHECK(std::vector<float>(a->params(), a->params() + a->info().numParams) ==
        std::vector<float>(b->params(), b->params() + b->info().numParams));
  TrainConfig perElement = smallConfig("", 3);
  perElement.episodeRng = TrainConfig::EpisodeRng::PerElement;
  CHECK_THROWS_WITH_AS(Trainer(*a, task, perElement),
                       "per-element episodes need a task that steps single elements; the "
                       "cue-reward task does not",
                       std::invalid_argument);
  // A per-element checkpoint continues on such a task only with batch episodes asked for.
  std::string dir = freshDir("lockstep-resume");
  auto c = makeNet("modul");
  trainFresh(*c, dir, 3, TrainConfig::EpisodeRng::PerElement);
  TrainConfig again = smallConfig(dir, 6);
  Trainer keep(*c, task, again);
  CHECK_THROWS_WITH_AS(keep.resume(dir + "/checkpoint.st"),
                       doctest::Contains("the checkpoint's episodes drew per element, and the "
                                         "cue-reward task does not step single elements; pass "
                                         "--episode-rng batch"),
                       DataError);
  again.episodeRng = TrainConfig::EpisodeRng::Batch;
  Trainer toBatch(*c, task, again);
  toBatch.resume(dir + "/checkpoint.st");
  CHECK(toBatch.episodeRngSince() == 3);
  toBatch.run();
  CHECK(toBatch.state().iteration == 6);
}

TEST_CASE("no optimizer step during the burn-in, steps afterwards") {
  auto net = makeNet("plastic");
  TrainConfig cfg = smallConfig(freshDir("burnin"), 2);
  cfg.burnIn = 2;
  Run tRun(*net, cfg);
  Trainer &t = tRun.trainer;
  t.initFresh();
  std::vector<float> before(net->params(), net->params() + net->info().numParams);
  t.run();
  CHECK(std::vector<float>(net->params(), net->params() + net->info().numParams) == before);
  cfg.iterations = 3;
  cfg.outDir = freshDir("burnin2");
  Run t2Run(*net, cfg);
  Trainer &t2 = t2Run.trainer;
  t2.initFresh();
  t2.run();
  CHECK(std::vector<float>(net->params(), net->params() + net->info().numParams) != before);
}

TEST_CASE("bad checkpoints are rejected with the file and field named") {
  std::string dir = freshDir("bad");
  {
    auto net = makeNet("modul");
    Run tRun(*net, smallConfig(dir, 3));
    Trainer &t = tRun.trainer;
    t.initFresh();
    t.run();
  }
  std::string path = dir + "/checkpoint.st";
  std::string good;
  {
    std::ifstream in(path, std::ios::binary);
    good.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto rewrite = [&](const std::string &bytes) { std::ofstream(path, std::ios::binary) << bytes; };

  SUBCASE("a flipped data byte fails the checksum") {
    std::string bad = good;
    bad[bad.size() - 3] ^= 0x40;
    rewrite(bad);
    CHECK(resumeError(dir).find("checksum") != std::string::npos);
  }
  SUBCASE("a truncated file") {
    rewrite(good.substr(0, good.size() / 2));
    CHECK(resumeError(dir).find("checkpoint.st") != std::string::npos);
  }
  SUBCASE("another version") {
    TensorFile f = readSafeTensors(path);
    f.metadata["version"] = "99";
    writeSafeTensors(path, f);
    CHECK(resumeError(dir).find("version: checkpoint version 99") != std::string::npos);
  }
  SUBCASE("a flipped digit in any metadata field fails the checksum") {
    for (const char *key : {"env_rng", "policy_rng", "adam_steps", "iteration", "lr", "threads"}) {
      CAPTURE(key);
      rewrite(good); // one field at a time
      TensorFile f = readSafeTensors(path);
      REQUIRE(f.metadata.count(key));
      f.metadata[key] = flipDigit(f.metadata[key]);
      writeSafeTensors(path, f);
      CHECK(resumeError(dir).find(checksumMessage) != std::string::npos);
    }
  }
  SUBCASE("a version-1 checkpoint (data-only checksum, fewer settings) still resumes") {
    TensorFile current = readSafeTensors(path);
    auto continueFrom = [&](const TensorFile &file) {
      writeSafeTensors(path, file);
      auto net = makeNet("modul");
      Run tRun(*net, smallConfig(dir, 6));
      Trainer &t = tRun.trainer;
      t.resume(path);
      t.run();
      return std::vector<float>(net->params(), net->params() + net->info().numParams);
    };
    std::vector<float> fromCurrent = continueFrom(current);
    TensorFile f = current;
    makeVersion1(f);
    CHECK(continueFrom(f) == fromCurrent); // the same continuation
    writeSafeTensors(path, f);
    CHECK(resumeError(dir).empty());
    TrainConfig other = smallConfig(dir, 6);
    other.threads = 1000; // not recorded in version 1: any count resumes it
    other.engine = "generated";
    CHECK(resumeError(dir, other).empty());
    other.batch = 7; // recorded: still checked
    CHECK(resumeError(dir, other).find("__metadata__.batch: the checkpoint has '3'") !=
          std::string::npos);
  }
  SUBCASE("a version-1 checkpoint with a flipped data byte fails its checksum") {
    TensorFile f = readSafeTensors(path);
    makeVersion1(f);
    f.tensors[0].bytes[0] ^= 0x40;
    writeSafeTensors(path, f);
    CHECK(resumeError(dir).find("__metadata__.checksum: the data does not match its checksum") !=
          std::string::npos);
  }
  SUBCASE("a version-1 checkpoint relabelled as version 2 fails the checksum") {
    TensorFile f = readSafeTensors(path);
    makeVersion1(f);
    f.metadata["version"] = std::to_string(Trainer::checkpointVersion);
    writeSafeTensors(path, f);
    CHECK(resumeError(dir).find(checksumMessage) != std::string::npos);
  }
  SUBCASE("another thread count or engine is a mismatch that names the field") {
    TrainConfig other = smallConfig(dir, 6);
    other.threads = 1000;
    std::string error = resumeError(dir, other);
    CHECK(error.find("__metadata__.threads: the checkpoint has '") != std::string::npos);
    CHECK(error.find("but this run has '1000'; pass --threads ") != std::string::npos);
    other = smallConfig(dir, 6);
    other.engine = "generated";
    error = resumeError(dir, other);
    CHECK(error.find("__metadata__.engine: the checkpoint has 'generic' but this run has "
                     "'generated'; pass --engine generic to continue it") != std::string::npos);
  }
  SUBCASE("a checkpoint path that is a directory is named") {
    fs::remove(path);
    fs::create_directories(path);
    CHECK(resumeError(dir).find("checkpoint.st: is a directory") != std::string::npos);
  }
  SUBCASE("another configuration") {
    TensorFile f = readSafeTensors(path);
    f.metadata["batch"] = "7";
    reseal(f);
    writeSafeTensors(path, f);
    CHECK(
        resumeError(dir).find("__metadata__.batch: the checkpoint has '7' but this run has '3'") !=
        std::string::npos);
  }
  SUBCASE("another network") {
    auto net = makeNet("plastic");
    Run tRun(*net, smallConfig(dir, 6));
    Trainer &t = tRun.trainer;
    std::string error;
    try {
      t.resume(path);
    } catch (const DataError &e) {
      error = e.what();
    }
    CHECK(error.find("__metadata__.network") != std::string::npos);
  }
  SUBCASE("another cues-per-trial setting") {
    TensorFile f = readSafeTensors(path);
    f.metadata["cues_per_trial"] = "1";
    reseal(f);
    writeSafeTensors(path, f);
    CHECK(resumeError(dir).find("__metadata__.cues_per_trial: the checkpoint has '1' but this run "
                                "has '2'") != std::string::npos);
  }
  SUBCASE("a checkpoint from before cues_per_trial was recorded resumes as 2 per trial") {
    TensorFile f = readSafeTensors(path);
    f.metadata.erase("cues_per_trial");
    makeVersion1(f);
    writeSafeTensors(path, f);
    CHECK(resumeError(dir).empty());
    CueRewardConfig one = smallTask();
    one.cuesPerTrial = 1;
    CHECK(resumeError(dir, smallConfig(dir, 6), one)
              .find("__metadata__.cues_per_trial: the checkpoint has '2'") != std::string::npos);
  }
  SUBCASE("a version-2 checkpoint without a setting of version 2 is an error") {
    TensorFile f = readSafeTensors(path);
    f.metadata.erase("threads");
    reseal(f);
    writeSafeTensors(path, f);
    CHECK(resumeError(dir).find("__metadata__.threads: missing") != std::string::npos);
  }
  SUBCASE("an unknown episode_rng is named") {
    TensorFile f = readSafeTensors(path);
    f.metadata["episode_rng"] = "sideways";
    reseal(f);
    writeSafeTensors(path, f);
    CHECK(resumeError(dir).find("__metadata__.episode_rng: 'sideways' is neither 'batch' nor "
                                "'per-element'") != std::string::npos);
  }
  SUBCASE("a missing setting that was always recorded is an error") {
    TensorFile f = readSafeTensors(path);
    f.metadata.erase("batch");
    reseal(f);
    writeSafeTensors(path, f);
    CHECK(resumeError(dir).find("__metadata__.batch: missing") != std::string::npos);
  }
  SUBCASE("values that no run writes are named, even under a good checksum") {
    // A checkpoint written by another tool (or edited and resealed): a NaN parameter would
    // otherwise surface iterations later as a loss that is not finite, naming nothing.
    auto setValue = [&](const char *tensor, size_t index, double value) {
      rewrite(good);
      TensorFile f = readSafeTensors(path);
      StoredTensor *t = nullptr;
      for (StoredTensor &candidate : f.tensors)
        if (candidate.name == tensor)
          t = &candidate;
      REQUIRE(t);
      if (t->dtype == DType::F32) {
        float v = float(value);
        std::memcpy(t->bytes.data() + index * 4, &v, 4);
      } else {
        std::memcpy(t->bytes.data() + index * 8, &value, 8);
      }
      reseal(f);
      writeSafeTensors(path, f);
    };
    setValue("params", 5, std::nan(""));
    CHECK(resumeError(dir).find("checkpoint.st: params: element 5 is nan") != std::string::npos);
    setValue("adam.v", 2, -1.0);
    CHECK(resumeError(dir).find("checkpoint.st: adam.v: element 2 is -1") != std::string::npos);
    setValue("log", 0, 1e300);
    CHECK(resumeError(dir).find("checkpoint.st: log: row 0 has iteration") != std::string::npos);
    setValue("log", 6, std::numeric_limits<double>::infinity());
    CHECK(resumeError(dir).find("checkpoint.st: log: element 6 is inf") != std::string::npos);
  }
  SUBCASE("a FIFO in the checkpoint's place is refused, not waited on") {
    fs::remove(path);
    REQUIRE(::mkfifo(path.c_str(), 0600) == 0);
    CHECK(resumeError(dir).find("checkpoint.st: is not a regular file") != std::string::npos);
  }
  SUBCASE("the intact file still loads") { CHECK(resumeError(dir).empty()); }
}

TEST_CASE("a non-finite loss stops training and keeps the last checkpoint") {
  std::string dir = freshDir("nan");
  auto net = makeNet("rnn");
  TrainConfig cfg = smallConfig(dir, 3);
  Run tRun(*net, cfg);
  Trainer &t = tRun.trainer;
  t.initFresh();
  t.run();
  std::string before;
  {
    std::ifstream in(dir + "/checkpoint.st", std::ios::binary);
    before.assign(std::istreambuf_iterator<char>(in), {});
  }
  cfg.iterations = 6;
  Run t2Run(*net, cfg);
  Trainer &t2 = t2Run.trainer;
  t2.resume(dir + "/checkpoint.st");
  net->param("h2o.weight")[0] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_WITH_AS(t2.run(), doctest::Contains("not finite"), std::runtime_error);
  std::string after;
  {
    std::ifstream in(dir + "/checkpoint.st", std::ios::binary);
    after.assign(std::istreambuf_iterator<char>(in), {});
  }
  CHECK(after == before);
}

TEST_CASE("a run folder is locked for the life of the run") {
  std::string dir = freshDir("lock");
  {
    RunLock first(dir);
    CHECK(fs::exists(dir + "/.lock"));
    std::string error;
    try {
      RunLock second(dir);
    } catch (const RunLockError &e) {
      error = e.what();
    }
    CHECK(error.find(dir + " is in use by another dopa train (pid " + std::to_string(getpid()) +
                     " on host ") != std::string::npos);
    CHECK(error.find("); wait for it or choose another --out") != std::string::npos);
  }
  CHECK(!fs::exists(dir + "/.lock")); // released and removed
  RunLock again(dir);                 // a later run gets it
  CHECK(fs::exists(dir + "/.lock"));
}

TEST_CASE("checkpoint metadata is validated without a network") {
  std::string dir = freshDir("state");
  {
    auto net = makeNet("rnn");
    Run tRun(*net, smallConfig(dir, 3));
    Trainer &t = tRun.trainer;
    t.initFresh();
    t.run();
  }
  std::string path = dir + "/checkpoint.st";
  TensorFile f = readSafeTensors(path);
  CheckpointState state = Trainer::readCheckpointState(f, path);
  CHECK(state.version == Trainer::checkpointVersion);
  CHECK(state.iteration == 3);
  CHECK(state.adamSteps == 1); // burn-in 2: a step at iteration 2 only
  f.metadata["adam_steps"] = "-1";
  reseal(f);
  CHECK_THROWS_WITH_AS(Trainer::readCheckpointState(f, path),
                       doctest::Contains("__metadata__.adam_steps: '-1' is not a count"),
                       DataError);
}

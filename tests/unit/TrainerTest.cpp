//===- TrainerTest.cpp - Training loop, checkpoints and bit-exact resume --===//
//
// A run interrupted after a checkpoint and resumed ends with exactly the parameters of an
// uninterrupted run; corrupt, truncated, wrong-version or mismatched checkpoints are rejected with
// the file and field named; the optimizer does not step during the burn-in.
//
//===----------------------------------------------------------------------===//
#include "TestUtil.h"

#include "dopa/compiler/Pipeline.h"
#include "dopa/generic/Executor.h"
#include "dopa/runtime/SafeTensors.h"
#include "dopa/train/Trainer.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

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

TrainConfig smallConfig(const std::string &dir, int64_t iterations) {
  TrainConfig c;
  c.batch = 3;
  c.task.episodeLength = 15;
  c.iterations = iterations;
  c.burnIn = 2;
  c.adam.lr = 1e-2;
  c.seed = 9;
  c.checkpointEvery = 3;
  c.outDir = dir;
  c.description = "test";
  return c;
}

std::string freshDir(const std::string &name) {
  fs::path dir = fs::temp_directory_path() / "dopa-trainer-tests" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

std::string resumeError(const std::string &dir) {
  auto net = makeNet("modul");
  Trainer t(*net, smallConfig(dir, 6));
  try {
    t.resume(dir + "/checkpoint.st");
  } catch (const DataError &e) {
    return e.what();
  }
  return "";
}
} // namespace

TEST_CASE("a resumed run continues bit-exactly as an uninterrupted one") {
  std::string straight = freshDir("straight"), split = freshDir("split");
  auto a = makeNet("modul");
  Trainer ta(*a, smallConfig(straight, 6));
  ta.initFresh();
  ta.run();
  std::vector<float> expected(a->params(), a->params() + a->info().numParams);

  {
    auto b = makeNet("modul");
    Trainer tb(*b, smallConfig(split, 3)); // "interrupted" after the checkpoint at iteration 3
    tb.initFresh();
    tb.run();
  }
  auto c = makeNet("modul");
  Trainer tc(*c, smallConfig(split, 6));
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

TEST_CASE("no optimizer step during the burn-in, steps afterwards") {
  auto net = makeNet("plastic");
  TrainConfig cfg = smallConfig(freshDir("burnin"), 2);
  cfg.burnIn = 2;
  Trainer t(*net, cfg);
  t.initFresh();
  std::vector<float> before(net->params(), net->params() + net->info().numParams);
  t.run();
  CHECK(std::vector<float>(net->params(), net->params() + net->info().numParams) == before);
  cfg.iterations = 3;
  cfg.outDir = freshDir("burnin2");
  Trainer t2(*net, cfg);
  t2.initFresh();
  t2.run();
  CHECK(std::vector<float>(net->params(), net->params() + net->info().numParams) != before);
}

TEST_CASE("bad checkpoints are rejected with the file and field named") {
  std::string dir = freshDir("bad");
  {
    auto net = makeNet("modul");
    Trainer t(*net, smallConfig(dir, 3));
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
  SUBCASE("another configuration") {
    TensorFile f = readSafeTensors(path);
    f.metadata["batch"] = "7";
    writeSafeTensors(path, f);
    CHECK(
        resumeError(dir).find("__metadata__.batch: the checkpoint has '7' but this run has '3'") !=
        std::string::npos);
  }
  SUBCASE("another network") {
    auto net = makeNet("plastic");
    Trainer t(*net, smallConfig(dir, 6));
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
    writeSafeTensors(path, f);
    CHECK(resumeError(dir).find("__metadata__.cues_per_trial: the checkpoint has '1' but this run "
                                "has '2'") != std::string::npos);
  }
  SUBCASE("a checkpoint from before cues_per_trial was recorded resumes as 2 per trial") {
    TensorFile f = readSafeTensors(path);
    f.metadata.erase("cues_per_trial");
    writeSafeTensors(path, f);
    CHECK(resumeError(dir).empty());
  }
  SUBCASE("a missing setting that was always recorded is an error") {
    TensorFile f = readSafeTensors(path);
    f.metadata.erase("batch");
    writeSafeTensors(path, f);
    CHECK(resumeError(dir).find("__metadata__.batch: missing") != std::string::npos);
  }
  SUBCASE("the intact file still loads") { CHECK(resumeError(dir).empty()); }
}

TEST_CASE("a non-finite loss stops training and keeps the last checkpoint") {
  std::string dir = freshDir("nan");
  auto net = makeNet("rnn");
  TrainConfig cfg = smallConfig(dir, 3);
  Trainer t(*net, cfg);
  t.initFresh();
  t.run();
  std::string before;
  {
    std::ifstream in(dir + "/checkpoint.st", std::ios::binary);
    before.assign(std::istreambuf_iterator<char>(in), {});
  }
  cfg.iterations = 6;
  Trainer t2(*net, cfg);
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

//===- LanguageModelTest.cpp - Truncated-BPTT training of language models --===//
//
// The language-model trainer on a tiny corpus written here, with the basic models of Table 1 at
// tiny sizes on the generic executor: a run checkpointed in the middle of an epoch and resumed
// ends with exactly the parameters and losses of an uninterrupted run (the carried state, the
// Hebbian traces included, is saved and restored); the state is carried from window to window
// (training twice on the same data without the carry gives other losses); the learning rate
// decays as documented; perplexity is exp of the mean cross-entropy (uniform logits give the
// vocabulary size); a checkpoint of another configuration is rejected naming the field; the
// loss of a window falls when it is seen again.
//
//===----------------------------------------------------------------------===//
#include "dopa/train/LanguageModel.h"
#include "dopa/compiler/Pipeline.h"
#include "dopa/generic/Executor.h"
#include "dopa/train/Corpus.h"

#include "TestUtil.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

using namespace dopa;
namespace fs = std::filesystem;

namespace {

fs::path freshDir(const std::string &name) { return test::scratchDir("lm-" + name); }

/// A tiny corpus: a repeating pattern over 12 words (so there is something to learn).
Corpus tinyCorpus() {
  fs::path dir = freshDir("corpus");
  const char *words[] = {"the", "cat", "sat", "on", "a", "mat", "dog", "ran", "to", "red", "big"};
  auto text = [&](int lines, int shift) {
    std::string s;
    for (int l = 0; l < lines; ++l) {
      for (int w = 0; w < 5; ++w)
        s += std::string(words[(l * 3 + w + shift) % 11]) + " ";
      s += "\n";
    }
    return s;
  };
  std::ofstream(dir / "ptb.train.txt") << text(60, 0);
  std::ofstream(dir / "ptb.valid.txt") << text(12, 1);
  std::ofstream(dir / "ptb.test.txt") << text(12, 2);
  return loadPtb(dir.string(), false);
}

std::unique_ptr<GenericNetwork> makeNet(const std::string &model, int vocab, int size = 4) {
  Frontend frontend;
  std::string path = std::string(DOPA_SOURCE_DIR "/examples/lm/") + model + ".dopa";
  auto compiled = compileSpec(frontend, path, {{"V", vocab}, {"E", size + 1}, {"H", size}}, "");
  REQUIRE(compiled);
  return std::make_unique<GenericNetwork>(std::move(compiled->graphs));
}

LMConfig smallConfig(const fs::path &out) {
  LMConfig c;
  c.batch = 3;
  c.bptt = 4;
  c.epochs = 2;
  c.lr = 0.5;
  c.lrDecay = 0.5;
  c.decayStart = 1;
  c.checkpointEvery = 3;
  c.outDir = out.string();
  c.model = "test";
  c.engine = "generic";
  c.evalBatch = 2;
  c.testBatch = 1;
  return c;
}

std::vector<float> paramsOf(Network &net) {
  return {net.params(), net.params() + net.info().numParams};
}

} // namespace

TEST_CASE("a language model resumed mid-epoch continues bit-exactly, traces included") {
  Corpus corpus = tinyCorpus();
  // modplast_lstm: the large model's spec (at tiny dims), with dropout masks drawn per window.
  for (const char *model : {"basic_lstm", "basic_modul_lstm", "modplast_lstm"}) {
    CAPTURE(model);
    fs::path straight = freshDir(std::string("straight-") + model);
    fs::path split = freshDir(std::string("split-") + model);
    auto a = makeNet(model, corpus.vocab.size());
    LanguageModelTrainer ta(*a, corpus, smallConfig(straight));
    ta.initFresh();
    double testA = ta.run();
    std::vector<float> expected = paramsOf(*a);

    // The same run, with the checkpoint written after window 3 of epoch 2 kept aside.
    fs::path kept = split / "kept.st";
    {
      auto b = makeNet(model, corpus.vocab.size());
      LanguageModelTrainer tb(*b, corpus, smallConfig(split));
      tb.initFresh();
      tb.run([&](const WindowLog &w, int64_t) {
        if (w.epoch == 2 && w.window == 3) // the checkpoint after window 2 is on disk
          fs::copy_file(split / "checkpoint.st", kept, fs::copy_options::overwrite_existing);
      });
    }
    REQUIRE(fs::exists(kept));
    auto c = makeNet(model, corpus.vocab.size());
    LanguageModelTrainer tc(*c, corpus, smallConfig(split));
    tc.resume(kept.string());
    double testC = tc.run();
    CHECK(paramsOf(*c) == expected);
    CHECK(testC == testA);
    REQUIRE(tc.windowLog().size() == ta.windowLog().size());
    for (size_t i = 0; i < ta.windowLog().size(); ++i)
      CHECK(tc.windowLog()[i].loss == ta.windowLog()[i].loss);
    REQUIRE(tc.epochLog().size() == 2);
    CHECK(tc.epochLog()[1].validPerplexity == ta.epochLog()[1].validPerplexity);
    CHECK(fs::exists(split / "epochs.csv"));
  }
}

TEST_CASE("the state is carried across windows and reset at each epoch") {
  Corpus corpus = tinyCorpus();
  auto net = makeNet("basic_plastic_lstm", corpus.vocab.size());
  LMConfig cfg = smallConfig(freshDir("carry"));
  cfg.outDir.clear();
  cfg.lr = 0; // no learning: only the state differs between the windows' starts
  cfg.epochs = 1;
  LanguageModelTrainer t(*net, corpus, cfg);
  t.initFresh();
  std::vector<int32_t> data = batchify(corpus.train, cfg.batch);
  std::vector<Window> windows = bpttWindows(int64_t(data.size()) / cfg.batch, cfg.bptt);
  REQUIRE(windows.size() >= 3);
  net->beginEpisode(cfg.batch);
  t.trainWindow(data, windows[0], 1, 0, 0);
  double carried = t.trainWindow(data, windows[1], 1, 1, 0).loss;
  net->beginEpisode(cfg.batch); // what a reset would give
  double fresh = t.trainWindow(data, windows[1], 1, 1, 0).loss;
  CHECK(carried != fresh);
}

TEST_CASE("learning rate schedule, perplexity of uniform logits, and learning") {
  Corpus corpus = tinyCorpus();
  auto net = makeNet("basic_lstm", corpus.vocab.size());
  LMConfig cfg = smallConfig(freshDir("schedule"));
  cfg.lr = 2;
  cfg.lrDecay = 0.5;
  cfg.decayStart = 2;
  LanguageModelTrainer t(*net, corpus, cfg);
  CHECK(t.learningRate(1) == 2);
  CHECK(t.learningRate(2) == 2);
  CHECK(t.learningRate(3) == 1);
  CHECK(t.learningRate(4) == 0.5);
  // All-zero parameters give uniform logits: perplexity = the vocabulary's size.
  std::fill(net->params(), net->params() + net->info().numParams, 0.f);
  CHECK(t.perplexity(corpus.valid, 2) == doctest::Approx(corpus.vocab.size()).epsilon(1e-5));
  // The same window seen again and again (one window per epoch, the state reset each time): its
  // loss falls.
  auto big = makeNet("basic_lstm", corpus.vocab.size(), 16);
  LMConfig again = smallConfig(freshDir("learn"));
  again.epochs = 30;
  again.lr = 0.5;
  again.decayStart = 30;
  again.limitBatches = 1;
  again.outDir.clear();
  LanguageModelTrainer learner(*big, corpus, again);
  learner.initFresh();
  learner.run();
  REQUIRE(learner.windowLog().size() == 30);
  CHECK(learner.windowLog().back().loss < 0.9 * learner.windowLog().front().loss);
}

TEST_CASE("dropout masks: 0 or 1/(1-p) at rate p, a slice of the batch's draw, ones when off") {
  NetworkInfo info;
  info.name = "masks";
  info.inputs = {{"tok", {}, true, {}}, {"m", {500}, false, {}, 0.3}};
  info.params = {{"w", {4}, false, {}}, {"s", {10, 1}, false, {InitSpec::Constant, 1, 0}, 0.5}};
  info.paramOffsets = {0, 4};
  info.numParams = 14;
  CHECK(info.numLearned() == 4);
  DropoutMasks masks(info);
  REQUIRE(!masks.empty());
  CHECK(!masks.isMaskInput(0));
  CHECK(masks.isMaskInput(1));
  CHECK_THROWS_AS(masks.input(0), std::invalid_argument);
  std::vector<float> params(14, 7.f);
  Rng rng(11);
  masks.draw(rng, 4, 0, 4, params.data());
  const float *all = masks.input(1);
  std::vector<float> whole(all, all + 4 * 500);
  int zeros = 0;
  for (float v : whole) {
    REQUIRE((v == 0.f || v == float(1 / 0.7)));
    zeros += v == 0.f;
  }
  CHECK(zeros > 2000 * 0.25); // 600 expected; a binomial sd of 20
  CHECK(zeros < 2000 * 0.35);
  for (int i = 0; i < 4; ++i)
    CHECK(params[size_t(i)] == 7.f); // learned parameters untouched
  for (int i = 4; i < 14; ++i)
    CHECK((params[size_t(i)] == 0.f || params[size_t(i)] == 2.f));
  // Elements 1 and 2 of the same draw (a rank's slice), and the same shared mask.
  std::vector<float> sliced(14, 7.f);
  Rng again(11);
  masks.draw(again, 4, 1, 2, sliced.data());
  CHECK(std::equal(whole.begin() + 500, whole.begin() + 1500, masks.input(1)));
  CHECK(sliced == params);
  CHECK_THROWS_AS(masks.draw(again, 4, 3, 2, sliced.data()), std::invalid_argument);
  masks.setOff(3, params.data());
  CHECK(std::all_of(masks.input(1), masks.input(1) + 1500, [](float v) { return v == 1.f; }));
  CHECK(std::all_of(params.begin() + 4, params.end(), [](float v) { return v == 1.f; }));
}

TEST_CASE("the LM trainer draws the masks for training windows only") {
  // With lr 0, one window: the training loss is the first window's loss with this window's masks;
  // perplexity() on the training text at the same batch and bptt runs that window without them.
  Corpus corpus = tinyCorpus();
  for (const char *model : {"basic_lstm", "modplast_lstm"}) {
    CAPTURE(model);
    auto net = makeNet(model, corpus.vocab.size());
    LMConfig cfg = smallConfig(freshDir(std::string("masks-") + model));
    cfg.lr = 0;
    cfg.epochs = 1;
    cfg.limitBatches = 1;
    cfg.outDir.clear();
    LanguageModelTrainer t(*net, corpus, cfg);
    t.initFresh();
    t.run();
    REQUIRE(t.windowLog().size() == 1);
    double trained = t.windowLog().front().loss;
    double unmasked = std::log(t.perplexity(corpus.train, cfg.batch));
    double again = std::log(t.perplexity(corpus.train, cfg.batch));
    CHECK(again == unmasked); // evaluation is deterministic
    if (std::string(model) == "basic_lstm")
      CHECK(trained == doctest::Approx(unmasked).epsilon(1e-6));
    else
      CHECK(std::abs(trained - unmasked) > 1e-3); // dropout changed the training window
  }
}

TEST_CASE("an LM checkpoint of another configuration or a damaged one is rejected") {
  Corpus corpus = tinyCorpus();
  fs::path dir = freshDir("reject");
  {
    auto net = makeNet("basic_lstm", corpus.vocab.size());
    LanguageModelTrainer t(*net, corpus, smallConfig(dir));
    t.initFresh();
    t.run();
  }
  std::string path = (dir / "checkpoint.st").string();
  auto errorOf = [&](const LMConfig &cfg) -> std::string {
    auto net = makeNet("basic_lstm", corpus.vocab.size());
    LanguageModelTrainer t(*net, corpus, cfg);
    try {
      t.resume(path);
    } catch (const DataError &e) {
      return e.what();
    }
    return "";
  };
  // The run trained its 2 epochs: continuing needs more of them.
  CHECK(errorOf(smallConfig(dir)).find("has trained 2 epoch(s); --epochs 2 asks for no more") !=
        std::string::npos);
  LMConfig more = smallConfig(dir);
  more.epochs = 3;
  CHECK(errorOf(more).empty());
  LMConfig other = more;
  other.bptt = 5;
  CHECK(errorOf(other).find("__metadata__.bptt: the checkpoint has '4' but this run has '5'") !=
        std::string::npos);
  other = more;
  other.l2 = 0.5;
  CHECK(errorOf(other).find("__metadata__.l2") != std::string::npos);
  // One flipped byte anywhere in the data.
  TensorFile f = readSafeTensors(path);
  f.tensors[0].bytes[0] ^= 0x10;
  writeSafeTensors(path, f);
  CHECK(errorOf(more).find("does not match its checksum") != std::string::npos);
}

//===----------------------------------------------------------------------===//
// The large model's recipe (LMRecipe.h): variable BPTT, AR/TAR, agdiv, averaged SGD.
//===----------------------------------------------------------------------===//

TEST_CASE("variable BPTT windows: awd-lstm-lm's lengths, contiguous, reproducible") {
  Rng rng(3), same(3);
  const int64_t rows = 100000;
  std::vector<Window> w = variableBpttWindows(rows, 70, rng);
  REQUIRE(w.size() > 1000);
  int shortOnes = 0;
  double total = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    CHECK(w[i].length >= (i + 1 < w.size() ? 5 : 1));
    CHECK(w[i].length <= 80);
    if (i + 1 < w.size())
      CHECK(w[i + 1].start == w[i].start + w[i].length);
    shortOnes += w[i].length < 50;
    total += w[i].length;
  }
  CHECK(w.front().start == 0);
  CHECK(w.back().start < rows - 2);
  CHECK(w.back().start + w.back().length <= rows - 1);
  // One window in 20 is drawn around bptt / 2; the mean is about 0.95 * 69.5 + 0.05 * 34.5.
  CHECK(shortOnes > 0.03 * double(w.size()));
  CHECK(shortOnes < 0.07 * double(w.size()));
  CHECK(total / double(w.size()) == doctest::Approx(67.75).epsilon(0.01));
  std::vector<Window> again = variableBpttWindows(rows, 70, same);
  REQUIRE(again.size() == w.size());
  CHECK(std::equal(w.begin(), w.end(), again.begin(), [](const Window &a, const Window &b) {
    return a.start == b.start && a.length == b.length;
  }));
  CHECK_THROWS_AS(variableBpttWindows(rows, 0, rng), std::invalid_argument);
}

TEST_CASE("AR and TAR: the penalty and its gradient against central differences") {
  const int steps = 4, count = 2, total = 3;
  const int64_t width = 5, n = count * width;
  const double ar = 2, tar = 1, scale = 1.5;
  Rng rng(5);
  std::vector<std::vector<float>> a(steps, std::vector<float>(size_t(n)));
  std::vector<std::vector<float>> h = a;
  for (int t = 0; t < steps; ++t)
    for (int64_t i = 0; i < n; ++i) {
      a[size_t(t)][size_t(i)] = float(rng.uniform(-1, 1));
      h[size_t(t)][size_t(i)] = float(rng.uniform(-1, 1));
    }
  auto penalty = [&](std::vector<std::vector<float>> *dA, std::vector<std::vector<float>> *dH) {
    std::vector<const float *> ap, hp;
    std::vector<float *> dap, dhp;
    std::vector<std::vector<float>> scratchA(steps, std::vector<float>(size_t(n), 0.f));
    std::vector<std::vector<float>> scratchH = scratchA;
    for (int t = 0; t < steps; ++t) {
      ap.push_back(a[size_t(t)].data());
      hp.push_back(h[size_t(t)].data());
      dap.push_back(dA ? (*dA)[size_t(t)].data() : scratchA[size_t(t)].data());
      dhp.push_back(dH ? (*dH)[size_t(t)].data() : scratchH[size_t(t)].data());
    }
    return activationPenalties(ap, hp, count, total, width, ar, tar, scale, dap, dhp);
  };
  // The value, written out.
  double want = 0;
  for (int t = 0; t < steps; ++t)
    for (int64_t i = 0; i < n; ++i) {
      want += ar * scale * std::pow(a[size_t(t)][size_t(i)], 2) / double(steps * total * width);
      if (t > 0)
        want += tar * scale *
                std::pow(double(h[size_t(t)][size_t(i)]) - h[size_t(t - 1)][size_t(i)], 2) /
                double((steps - 1) * total * width);
    }
  std::vector<std::vector<float>> dA(steps, std::vector<float>(size_t(n), 0.f)), dH = dA;
  CHECK(penalty(&dA, &dH) == doctest::Approx(want).epsilon(1e-12));
  // Central differences (the penalty is quadratic: exact up to rounding).
  const float eps = 1.0f / 64;
  for (auto [values, grad] : {std::pair{&a, &dA}, std::pair{&h, &dH}})
    for (int t = 0; t < steps; ++t)
      for (int64_t i : {int64_t(0), n / 2, n - 1}) {
        float &v = (*values)[size_t(t)][size_t(i)];
        float saved = v;
        v = saved + eps;
        double up = penalty(nullptr, nullptr);
        v = saved - eps;
        double down = penalty(nullptr, nullptr);
        v = saved;
        CHECK((up - down) / (2 * eps) ==
              doctest::Approx((*grad)[size_t(t)][size_t(i)]).epsilon(1e-5));
      }
}

TEST_CASE("the iterate average: the mean of the iterates, restored bit-exactly") {
  IterateAverage avg;
  CHECK(!avg.active());
  avg.start(2);
  CHECK(avg.active());
  const float p1[] = {1, 2}, p2[] = {3, 6}, p3[] = {0.1f, 0.7f};
  avg.add(p1);
  avg.add(p2);
  CHECK(avg.values() == std::vector<float>{2, 4});
  IterateAverage resumed;
  resumed.restore(avg.sums(), avg.count());
  avg.add(p3);
  resumed.add(p3);
  CHECK(avg.count() == 3);
  CHECK(resumed.values() == avg.values());
  CHECK(avg.values()[0] == float((1.0 + 3.0 + double(0.1f)) / 3));
}

namespace {
/// The awd-lstm-lm recipe at the test's size (modplast_lstm: masks, ar_h and tar_h).
LMConfig awdConfig(const fs::path &out) {
  LMConfig c = smallConfig(out);
  c.lossMean = true;
  c.variableBptt = true;
  c.bptt = 6; // lengths of max(5, N(6, 5)) and bptt/2 one time in 20, at most 16
  c.ar = 2;
  c.tar = 1;
  c.alphaGradDiv = 4;
  c.asgdAfter = 1;
  c.lrDecay = 1;
  c.lr = 1;
  c.clipNorm = 0.25;
  c.epochs = 3;
  return c;
}
} // namespace

TEST_CASE("the awd recipe trains and resumes mid-epoch bit-exactly, averaging included") {
  Corpus corpus = tinyCorpus();
  fs::path straight = freshDir("awd-straight"), split = freshDir("awd-split");
  auto a = makeNet("modplast_lstm", corpus.vocab.size());
  LanguageModelTrainer ta(*a, corpus, awdConfig(straight));
  ta.initFresh();
  double testA = ta.run();
  CHECK(ta.averaging()); // from the end of epoch 1
  CHECK(std::isfinite(testA));
  // The learning rate of each window is the epoch's, times its length / bptt.
  std::vector<Window> first = ta.epochWindows(1);
  REQUIRE(first.size() >= 2);
  bool varied = false;
  for (size_t i = 0; i < first.size(); ++i) {
    CHECK(ta.windowLog()[i].lr == doctest::Approx(1.0 * first[i].length / 6));
    varied = varied || first[i].length != first[0].length;
  }
  CHECK(varied);
  fs::path kept = split / "kept.st";
  {
    auto b = makeNet("modplast_lstm", corpus.vocab.size());
    LanguageModelTrainer tb(*b, corpus, awdConfig(split));
    tb.initFresh();
    tb.run([&](const WindowLog &w, int64_t) {
      if (w.epoch == 3 && w.window == 3) // averaging; the checkpoint after window 2 is on disk
        fs::copy_file(split / "checkpoint.st", kept, fs::copy_options::overwrite_existing);
    });
  }
  REQUIRE(fs::exists(kept));
  auto c = makeNet("modplast_lstm", corpus.vocab.size());
  LanguageModelTrainer tc(*c, corpus, awdConfig(split));
  tc.resume(kept.string());
  CHECK(tc.averaging());
  double testC = tc.run();
  CHECK(paramsOf(*c) == paramsOf(*a));
  CHECK(testC == testA);
  REQUIRE(tc.epochLog().size() == 3);
  CHECK(tc.epochLog()[2].validPerplexity == ta.epochLog()[2].validPerplexity);
}

TEST_CASE("recipe terms: the mean loss scales the gradient by 1/T, AR shrinks its output, agdiv "
          "slows alpha") {
  Corpus corpus = tinyCorpus();
  // One window, no update: the gradient norm of the summed loss is T times the mean loss's.
  auto norm = [&](bool mean) {
    auto net = makeNet("basic_lstm", corpus.vocab.size());
    LMConfig cfg = smallConfig(freshDir(mean ? "loss-mean" : "loss-sum"));
    cfg.lossMean = mean;
    cfg.lr = 0;
    cfg.clipNorm = 1e9;
    cfg.epochs = 1;
    cfg.limitBatches = 1;
    cfg.outDir.clear();
    LanguageModelTrainer t(*net, corpus, cfg);
    t.initFresh();
    t.run();
    return t.windowLog().front().gradNorm;
  };
  CHECK(norm(false) == doctest::Approx(4 * norm(true)).epsilon(1e-5)); // bptt 4
  // Train modplast_lstm with and without a strong AR, then read ar_h with dropout off.
  auto trained = [&](double ar, double agdiv, std::vector<float> *alphaBefore) {
    auto net = makeNet("modplast_lstm", corpus.vocab.size());
    LMConfig cfg = smallConfig(freshDir("ar"));
    cfg.ar = ar;
    cfg.alphaGradDiv = agdiv;
    cfg.clipNorm = 1e9;
    cfg.epochs = 1;
    cfg.outDir.clear();
    LanguageModelTrainer t(*net, corpus, cfg);
    t.initFresh();
    if (alphaBefore)
      *alphaBefore = std::vector<float>(net->params(), net->params() + net->info().numParams);
    t.run();
    return net;
  };
  auto meanSquare = [&](Network &net) {
    const NetworkInfo &info = net.info();
    DropoutMasks masks(info);
    masks.setOff(1, net.params());
    std::vector<float> tok(1);
    std::vector<const float *> in(info.inputs.size());
    for (size_t k = 0; k < in.size(); ++k)
      in[k] = masks.isMaskInput(int(k)) ? masks.input(int(k)) : tok.data();
    std::vector<std::vector<float>> outs;
    std::vector<float *> outPtr;
    for (const TensorInfo &o : info.outputs)
      outs.emplace_back(size_t(o.numel()));
    for (auto &o : outs)
      outPtr.push_back(o.data());
    int ar = info.findOutput("ar_h");
    double sum = 0;
    net.beginEpisode(1);
    for (int t = 0; t < 20; ++t) {
      tok[0] = float(corpus.valid[size_t(t)]);
      net.step(in.data(), outPtr.data());
      for (float v : outs[size_t(ar)])
        sum += double(v) * v;
    }
    net.truncate();
    return sum;
  };
  auto plain = trained(0, 1, nullptr);
  auto regularized = trained(50, 1, nullptr);
  CHECK(meanSquare(*regularized) < 0.5 * meanSquare(*plain));
  // agdiv: the alphas move (far) less when their gradient is divided.
  auto moved = [&](double agdiv) {
    std::vector<float> before;
    auto net = trained(0, agdiv, &before);
    const NetworkInfo &info = net->info();
    double change = 0;
    for (size_t p = 0; p < info.params.size(); ++p)
      if (info.params[p].name.size() > 6 &&
          info.params[p].name.substr(info.params[p].name.size() - 6) == ".alpha")
        for (int64_t i = 0; i < info.params[p].numel(); ++i) {
          size_t at = info.paramOffsets[p] + size_t(i);
          change += std::abs(double(net->params()[at]) - before[at]);
        }
    return change;
  };
  double free = moved(1), divided = moved(1000);
  CHECK(free > 0);
  CHECK(divided < 0.01 * free);
}

TEST_CASE("averaging that starts after the last epoch leaves the test to the iterate") {
  Corpus corpus = tinyCorpus();
  auto net = makeNet("basic_lstm", corpus.vocab.size());
  LMConfig cfg = smallConfig(freshDir("asgd-last"));
  cfg.epochs = 2;
  cfg.asgdAfter = 2; // starts after epoch 2's validation: no update is averaged
  cfg.outDir.clear();
  LanguageModelTrainer t(*net, corpus, cfg);
  t.initFresh();
  double test = t.run();
  CHECK(t.averaging());
  CHECK(!t.loadAverage()); // nothing to load
  CHECK(test == t.perplexity(corpus.test, cfg.testBatch));
  // Not the uniform logits of an all-zero average (perplexity = the vocabulary's size).
  CHECK(std::abs(test - double(corpus.vocab.size())) > 1e-3);
}

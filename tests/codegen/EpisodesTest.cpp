//===- EpisodesTest.cpp - Closed-loop episodes one element at a time ------===//
//
// GeneratedExecutor::runElements runs closed-loop episodes (each step's input computed from the
// element's last outputs) one element at a time with the same outputs, states and gradients, bit
// for bit, as step() by step(), and declines the networks it cannot run; an exception in a callback
// reaches the caller. In the A2C trainer, a run whose episodes draw per element runs them so; the
// same run stepped in lock step (the engine declining) gives the same parameters and logs, bit for
// bit, on the cue-reward and maze tasks with their generated networks.
//
//===----------------------------------------------------------------------===//
#include "CodegenCases.h"
#include "CodegenRun.h"

#include "dopa/examples/ExampleNetworks.h"
#include "dopa/runtime/Generated.h"
#include "dopa/train/CueReward.h"
#include "dopa/train/Maze.h"
#include "dopa/train/Trainer.h"

#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

using namespace dopa;
using namespace dopa::test;

namespace {
/// Element b's input k at step t of a closed loop: the episode's input plus a term from the
/// element's own outputs of step t - 1, so a step's input depends on its element's last outputs.
template <class T>
T closedInput(const Episode<T> &ep, const NetworkInfo &info, size_t k, int t, int b, int64_t e,
              const std::vector<std::vector<T>> &lastOut) {
  int64_t n = info.inputs[k].numel();
  T v = ep.inputs[k][(size_t(t) * size_t(ep.batch) + size_t(b)) * size_t(n) + size_t(e)];
  T sum = 0;
  for (size_t o = 0; o < lastOut.size(); ++o)
    for (int64_t i = 0; i < info.outputs[o].numel(); ++i)
      sum += lastOut[o][size_t(b * info.outputs[o].numel() + i)];
  return v + T(0.5) * std::tanh(sum + T(e));
}

/// A closed-loop episode (inputs from closedInput), with runElements() or with step() per step;
/// the outputs, final states and the gradients of sum <dY, Y>. Returns nothing when runElements()
/// declines.
template <class T>
std::optional<RunResult<T>> runClosedLoop(GeneratedExecutor<T> &gen, const NetworkInfo &info,
                                          const Episode<T> &ep, bool elements) {
  RunResult<T> r;
  const int B = ep.batch, steps = ep.steps;
  gen.beginEpisode(B);
  std::vector<std::vector<T>> lastOut; // per output, [B * numel]: each element's last outputs
  for (const TensorInfo &o : info.outputs) {
    r.outputs.emplace_back(size_t(steps) * size_t(B) * size_t(o.numel()));
    lastOut.emplace_back(size_t(B) * size_t(o.numel()), T(0));
  }
  if (elements) {
    bool ran = gen.runElements(
        steps,
        [&](int b, int t, T *const *x) {
          for (size_t k = 0; k < info.inputs.size(); ++k)
            for (int64_t e = 0; e < info.inputs[k].numel(); ++e)
              x[k][e] = closedInput(ep, info, k, t, b, e, lastOut);
        },
        [&](int b, int t, const T *const *y) {
          for (size_t o = 0; o < info.outputs.size(); ++o) {
            int64_t n = info.outputs[o].numel();
            std::copy(y[o], y[o] + n, lastOut[o].begin() + b * n);
            std::copy(y[o], y[o] + n, r.outputs[o].begin() + (int64_t(t) * B + b) * n);
          }
        });
    if (!ran)
      return std::nullopt;
  } else {
    std::vector<std::vector<T>> x, y;
    for (const TensorInfo &in : info.inputs)
      x.emplace_back(size_t(B) * size_t(in.numel()));
    for (const TensorInfo &o : info.outputs)
      y.emplace_back(size_t(B) * size_t(o.numel()));
    std::vector<const T *> in;
    std::vector<T *> out;
    for (auto &v : x)
      in.push_back(v.data());
    for (auto &v : y)
      out.push_back(v.data());
    for (int t = 0; t < steps; ++t) {
      for (size_t k = 0; k < info.inputs.size(); ++k)
        for (int b = 0; b < B; ++b)
          for (int64_t e = 0; e < info.inputs[k].numel(); ++e)
            x[k][size_t(b * info.inputs[k].numel() + e)] =
                closedInput(ep, info, k, t, b, e, lastOut);
      gen.step(in.data(), out.data());
      for (size_t o = 0; o < y.size(); ++o) {
        lastOut[o] = y[o];
        std::copy(y[o].begin(), y[o].end(),
                  r.outputs[o].begin() + int64_t(t) * int64_t(y[o].size()));
      }
    }
  }
  collectStates(gen, info, B, r);
  std::vector<std::vector<const T *>> g;
  std::vector<const T *const *> gPtr = outputGradPointers(info, ep, g);
  std::fill(gen.grads().begin(), gen.grads().end(), T(0));
  gen.backward(gPtr.data(), nullptr);
  r.grads = gen.grads();
  return r;
}
} // namespace

TEST_CASE("runElements() runs closed loops as step() by step() would, bit for bit") {
  // Each element's whole episode on one thread, its inputs written by the observer from its own
  // last outputs: the same kernels on the same blocks as the lock-step loop, so the outputs, the
  // final states and the gradients are the same bits, with checkpoints inside the episode or not.
  // Networks it cannot run (batched readouts, integer inputs, stage-major) are declined.
  int ran = 0, declined = 0;
  for (const test::CodegenCase &c : test::codegenCases())
    for (int every : {0, 2, 3}) {
      INFO("case " << c.name << ", checkpoint every " << every);
      GeneratedExecutor<double> gen(c.generated());
      gen.setStageOrder(StageOrder::ElementMajor);
      gen.setCheckpointEvery(every);
      const NetworkInfo &info = gen.info();
      gen.params() = makeParams<double>(info, 5, 3.0, true);
      Episode<double> ep = makeEpisode<double>(info, 7, 3, 17);
      std::optional<RunResult<double>> elements = runClosedLoop(gen, info, ep, true);
      bool intInputs = false;
      for (const TensorInfo &in : info.inputs)
        intInputs |= in.isInt;
      if (!elements) {
        CHECK((c.generated().numReadouts > 0 || intInputs || gen.stageMajor()));
        ++declined;
        continue;
      }
      ++ran;
      std::optional<RunResult<double>> stepwise = runClosedLoop(gen, info, ep, false);
      REQUIRE(stepwise);
      CHECK(elements->outputs == stepwise->outputs);
      CHECK(elements->states == stepwise->states);
      CHECK(elements->grads == stepwise->grads);
    }
  CHECK(ran >= 3 * 8); // the cue-reward and maze networks
  CHECK(declined > 0); // the language models (integer inputs) and the readout cases
}

TEST_CASE("runElements(): an exception in a callback reaches the caller, the next episode runs") {
  // The first exception of any element's callback is rethrown after every thread stopped; the
  // episode is dropped (its elements stopped at different steps), and the next one is exact.
  const test::CodegenCase *modul = nullptr;
  for (const test::CodegenCase &c : test::codegenCases())
    if (std::string(c.name) == "cue_reward_modul_tiny")
      modul = &c;
  REQUIRE(modul);
  GeneratedExecutor<double> gen(modul->generated());
  gen.setStageOrder(StageOrder::ElementMajor);
  const NetworkInfo &info = gen.info();
  gen.params() = makeParams<double>(info, 5, 3.0, true);
  Episode<double> ep = makeEpisode<double>(info, 6, 4, 23);
  gen.beginEpisode(4);
  int calls = 0;
  auto observe = [&](int b, int t, double *const *x) {
    (void)b, (void)t;
    std::fill(x[0], x[0] + info.inputs[0].numel(), 0.5);
  };
  auto react = [&](int b, int t, const double *const *) {
    if (b == 2 && t == 3)
      throw std::runtime_error("element 2 failed at step 3");
#pragma omp atomic
    ++calls;
  };
  CHECK_THROWS_WITH(gen.runElements(6, observe, react), "element 2 failed at step 3");
  CHECK(calls < 4 * 6);
  // The episode is gone: nothing recorded, no step until the next beginEpisode().
  CHECK(gen.recordedSteps() == 0);
  std::vector<double> x(size_t(4 * info.inputs[0].numel())), y(64 * 1024);
  const double *in[] = {x.data()};
  std::vector<double *> out(info.outputs.size(), y.data());
  CHECK_THROWS_AS(gen.step(in, out.data()), std::logic_error);
  std::optional<RunResult<double>> again = runClosedLoop(gen, info, ep, true);
  std::optional<RunResult<double>> stepwise = runClosedLoop(gen, info, ep, false);
  REQUIRE(again);
  CHECK(again->grads == stepwise->grads);
}

namespace {

/// A network that forwards everything to `inner` and counts runElements() calls; with `decline`
/// it declines them, so the trainer steps in lock step.
class Forwarding final : public Network {
public:
  Forwarding(Network &inner, bool decline) : inner(inner), decline(decline) {}
  const NetworkInfo &info() const override { return inner.info(); }
  float *params() override { return inner.params(); }
  float *grads() override { return inner.grads(); }
  void beginEpisode(int batch) override { inner.beginEpisode(batch); }
  int batch() const override { return inner.batch(); }
  void step(const float *const *inputs, float *const *outputs) override {
    ++steps;
    inner.step(inputs, outputs);
  }
  bool runElements(int n, const ElementObserveFn &observe, const ElementReactFn &react) override {
    if (decline)
      return false;
    bool ran = inner.runElements(n, observe, react);
    elementRuns += ran;
    return ran;
  }
  void backward(const float *const *const *outputGrads,
                const float *const *finalStateGrads = nullptr) override {
    inner.backward(outputGrads, finalStateGrads);
  }
  void truncate() override { inner.truncate(); }
  int recordedSteps() const override { return inner.recordedSteps(); }
  const float *state(int s) const override { return inner.state(s); }
  void setState(int s, const float *values) override { inner.setState(s, values); }

  int steps = 0, elementRuns = 0;

private:
  Network &inner;
  bool decline;
};

struct Result {
  std::vector<float> params;
  std::vector<IterationLog> log;
  int steps = 0, elementRuns = 0;
};

Result train(const GeneratedSpec &spec, EpisodicTask &task, const std::string &name, bool decline) {
  ExecutorNetwork<GeneratedExecutor<float>> net(spec);
  net.executor().setStageOrder(StageOrder::ElementMajor); // whatever DOPA_STAGE_ORDER says
  Forwarding wrapped(net, decline);
  TrainConfig cfg;
  cfg.task = name;
  cfg.batch = task.batch();
  cfg.iterations = 3;
  cfg.burnIn = 0;
  cfg.adam.lr = 1e-2;
  cfg.seed = 4;
  cfg.checkpointEvery = 0;
  cfg.engine = "generated";
  Trainer trainer(wrapped, task, cfg);
  CHECK(trainer.settings().at("episode_rng") == "per-element");
  trainer.initFresh();
  trainer.run();
  return {std::vector<float>(wrapped.params(), wrapped.params() + wrapped.info().numParams),
          trainer.state().log, wrapped.steps, wrapped.elementRuns};
}

void checkSame(const Result &elements, const Result &lockStep) {
  CHECK(elements.elementRuns == 3); // one closed loop per iteration
  CHECK(elements.steps == 0);
  CHECK(lockStep.elementRuns == 0);
  CHECK(lockStep.steps > 0);
  CHECK(elements.params == lockStep.params);
  REQUIRE(elements.log.size() == lockStep.log.size());
  for (size_t i = 0; i < elements.log.size(); ++i) {
    CHECK(elements.log[i].meanReward == lockStep.log[i].meanReward);
    CHECK(elements.log[i].loss == lockStep.log[i].loss);
    CHECK(elements.log[i].gradNorm == lockStep.log[i].gradNorm);
  }
}

} // namespace

TEST_CASE("per-element episodes: one element at a time equals lock step, bit for bit") {
  SUBCASE("cue-reward, modul") {
    const GeneratedSpec *spec = findExampleNetwork("cue_reward", "modul");
    REQUIRE(spec);
    CueRewardConfig c;
    c.episodeLength = 20;
    CueRewardTask a(c, 3), b(c, 3);
    checkSame(train(*spec, a, "cue-reward", false), train(*spec, b, "cue-reward", true));
  }
  SUBCASE("maze, modul") {
    const GeneratedSpec *spec = findExampleNetwork("maze", "modul");
    REQUIRE(spec);
    MazeConfig c;
    c.episodeLength = 25;
    MazeTask a(c, 4), b(c, 4);
    checkSame(train(*spec, a, "maze", false), train(*spec, b, "maze", true));
  }
}

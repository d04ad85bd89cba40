//===- EpisodesTest.cpp - Per-element episodes in the A2C trainer ---------===//
//
// A training run whose episodes draw per element runs each element's whole episode on one thread
// where the engine can (Network::runElements, the generated engine); the same run stepped in lock
// step (the engine declining) gives the same parameters and logs, bit for bit, on the cue-reward
// and maze tasks with their generated networks.
//
//===----------------------------------------------------------------------===//
#include "dopa/examples/ExampleNetworks.h"
#include "dopa/runtime/Generated.h"
#include "dopa/train/CueReward.h"
#include "dopa/train/Maze.h"
#include "dopa/train/Trainer.h"

#include <doctest/doctest.h>

#include <memory>
#include <vector>

using namespace dopa;

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

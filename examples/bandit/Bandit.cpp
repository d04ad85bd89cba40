//===- Bandit.cpp - Two-armed bandit with switching rewards, as a plug-in -===//
//
// The classic meta-RL task (Wang et al. 2016, "Learning to reinforcement learn"; Duan et al. 2016,
// RL^2), written as a task plug-in: a template to copy for your own task (see README.md here).
//
// Per episode and batch element, one of two arms is good: it pays reward 1 with probability
// 1 - pLow, the other with probability pLow (reward 0 otherwise). Which arm is good is drawn
// uniformly at the start of the episode, and after every step the two arms swap with probability
// switchProb ("switching rewards"; 0 gives a stationary bandit). The network cannot see which arm
// is good: it must learn, within the episode, from the rewards it gets. A random policy earns 0.5
// per step; one that always knows the good arm earns 1 - pLow.
//
// Observations (5 per step):
//   [0] bias 1  [1] step/eplen  [2] previous reward  [3:5] one-hot previous action (zero at step 0)
//
// Randomness comes only from the Rng the trainer passes in, drawn in a fixed order so that runs
// (and resumed checkpoints) are reproducible:
//   reset: for b = 0..B-1, one rng.below(2): the good arm.
//   act:   for b = 0..B-1, one rng.uniform() for the reward, then one for the switch (both drawn
//          always, even when switchProb is 0, so the order never depends on the options' values).
// The task is written one element at a time (dopa::ElementTask: resetElement, observeElement,
// actElement, each drawing as above for its element; ElementTask derives reset, observe and act
// from them), so the trainer runs each element's episode with a generator of its own, start to end
// on one thread. A task that implements only dopa::EpisodicTask's reset, observe and act works
// too: the trainer then steps its batch in lock step.
//
// Only header-only parts of dopa are used (Task.h, Random.h), as a plug-in must.
//
//===----------------------------------------------------------------------===//
#include "dopa/train/Task.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace {

/// Everything that shapes the episodes; make() fills it from the task options.
struct BanditConfig {
  int episodeLength = 100;  // "eplen"
  double pLow = 0.1;        // "p-low": the bad arm's payout probability
  double switchProb = 0.02; // "switch": probability per step that the good arm changes
};

class BanditTask final : public dopa::ElementTask {
public:
  static constexpr int numObservations = 5;

  BanditTask(BanditConfig config, int batch) : ElementTask("bandit"), cfg(config), B(batch) {
    if (batch < 1)
      throw std::invalid_argument("bandit: the batch must be at least 1");
    if (cfg.episodeLength < 1 || !(cfg.pLow >= 0 && cfg.pLow <= 0.5) ||
        !(cfg.switchProb >= 0 && cfg.switchProb <= 1))
      throw std::invalid_argument("bandit: invalid configuration");
    elems.resize(size_t(B));
  }

  int batch() const override { return B; }
  int observationSize() const override { return numObservations; }
  int numActions() const override { return 2; }
  int episodeLength() const override { return cfg.episodeLength; }

  // One element at a time (dopa::ElementSteps): each touches element b only, so the trainer can
  // run every element's whole episode on one thread, with a generator of its own. ElementTask
  // steps the batch in lock step with them (reset, observe, act), element by element.
  void resetElement(int b, dopa::Rng &rng) override {
    Element &e = elems.at(size_t(b));
    e.goodArm = int(rng.below(2));
    e.prevReward = 0;
    e.prevAction = -1;
  }

  void observeElement(int b, int step, float *row) const override {
    const Element &e = elems.at(size_t(b));
    std::fill(row, row + numObservations, 0.f);
    row[0] = 1.f;
    row[1] = float(step) / float(cfg.episodeLength);
    row[2] = e.prevReward;
    if (e.prevAction >= 0)
      row[3 + e.prevAction] = 1.f;
  }

  float actElement(int b, int step, int a, dopa::Rng &rng) override {
    checkStep(b, step, a); // std::out_of_range for a bad action, std::logic_error for a bad step
    Element &e = elems.at(size_t(b));
    double payout = a == e.goodArm ? 1 - cfg.pLow : cfg.pLow;
    float r = rng.uniform() < payout ? 1.f : 0.f;
    if (rng.uniform() < cfg.switchProb) // the swap shows from the next step on
      e.goodArm = 1 - e.goodArm;
    e.prevReward = r;
    e.prevAction = a;
    return r;
  }

  std::vector<std::pair<std::string, std::string>> settings() const override {
    return {{"episode_length", std::to_string(cfg.episodeLength)},
            {"p_low", dopa::settingText(cfg.pLow)},
            {"switch_prob", dopa::settingText(cfg.switchProb)}};
  }

private:
  /// One episode's state.
  struct Element {
    int goodArm = 0;      // the arm that pays with probability 1 - pLow
    float prevReward = 0; // shown at the next step
    int prevAction = -1;  // -1 before the first action
  };

  BanditConfig cfg;
  int B;
  std::vector<Element> elems;
};

/// The registry entry: name, help, A2C defaults and the factory that reads the options.
dopa::TaskInfo banditInfo() {
  dopa::TaskInfo info;
  info.name = "bandit";
  info.summary = "two-armed bandit whose good arm switches at random (Wang et al. 2016)";
  info.examplesDir = "bandit"; // examples/bandit/<variant>.dopa
  info.optionsHelp = "eplen=100 (steps per episode), p-low=0.1 (the bad arm's payout "
                     "probability, in [0, 0.5]), switch=0.02 (probability per step that the good "
                     "arm changes, in [0, 1])";
  info.defaults.episodeLength = 100; // informational: make() reads "eplen" itself
  info.defaults.lr = 1e-3;
  info.defaults.adamEps = 1e-6;
  info.defaults.clipNorm = 2.0;
  info.defaults.entropyWeight = 0.05;
  info.defaults.valueWeight = 0.1;
  info.defaults.gamma = 0.9;
  info.make = [](int batch, const dopa::TaskOptions &options) {
    BanditConfig cfg;
    // getInt/getReal throw TaskOptionError on malformed or out-of-range values.
    cfg.episodeLength = options.getInt("eplen", cfg.episodeLength, 1);
    cfg.pLow = options.getReal("p-low", cfg.pLow, 0.0, 0.5);
    cfg.switchProb = options.getReal("switch", cfg.switchProb, 0.0, 1.0);
    return std::unique_ptr<dopa::EpisodicTask>(std::make_unique<BanditTask>(cfg, batch));
  };
  return info;
}

} // namespace

/// The plug-in's entry point, found by name when `dopa train --task-library` loads the library.
/// The attribute keeps it exported even when the library is built with hidden visibility.
extern "C" [[gnu::visibility("default")]] void dopa_register_tasks(dopa::TaskRegistry &registry) {
  registry.add(banditInfo());
}

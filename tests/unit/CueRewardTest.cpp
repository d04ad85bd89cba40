//===- CueRewardTest.cpp - The cue-reward task's statistics and rules ----===//
//
// Trial structure (lengths 5-8, two distinct cues, GO then blank; the demo's one-cue trials), cue
// and input layout, reward
// rules (only the GO step is scored; the reward is seen on the next step), independence of the
// batch elements, and determinism for a seed.
//
//===----------------------------------------------------------------------===//
#include "dopa/train/CueReward.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>

using namespace dopa;

namespace {
/// Check a fresh trial's frame ([blank] ... [GO] [blank]); returns the cue ids it shows.
std::vector<int> checkedTrialCues(const CueRewardTask::Element &e) {
  int n = int(e.trial.size());
  CHECK(e.trial.front() == CueRewardTask::blank);
  CHECK(e.trial[size_t(n - 2)] == CueRewardTask::go);
  CHECK(e.trial.back() == CueRewardTask::blank);
  std::vector<int> shown;
  for (int k : e.trial)
    if (k >= 0)
      shown.push_back(k);
  return shown;
}
} // namespace

TEST_CASE("cue-reward trials have the reference structure and statistics") {
  CueRewardConfig cfg;
  CueRewardTask task(cfg, 16);
  Rng rng(42);
  std::map<int, int> lengths;
  int trials = 0, withTarget = 0;
  for (int episode = 0; episode < 50; ++episode) {
    task.reset(rng);
    for (int b = 0; b < task.batch(); ++b) {
      const auto &e = task.element(b);
      REQUIRE(e.cues.size() == 4);
      std::set<std::vector<float>> distinct(e.cues.begin(), e.cues.end());
      CHECK(distinct.size() == 4);
      for (const auto &cue : e.cues)
        for (float bit : cue)
          CHECK((bit == 1.f || bit == -1.f));
      CHECK((e.target >= 0 && e.target < 4));
    }
    std::vector<int> actions(16, 0);
    std::vector<float> rewards(16);
    for (int t = 0; t < cfg.episodeLength; ++t) {
      for (int b = 0; b < task.batch(); ++b) {
        const auto &e = task.element(b);
        if (e.pos == 0) { // a fresh trial: check it whole
          ++trials;
          ++lengths[int(e.trial.size())];
          std::vector<int> shown = checkedTrialCues(e);
          REQUIRE(shown.size() == 2);
          CHECK(shown[0] != shown[1]);
          bool hasTarget = shown[0] == e.target || shown[1] == e.target;
          CHECK(hasTarget == e.targetShown);
          withTarget += hasTarget;
        }
      }
      task.act(actions.data(), rewards.data(), rng);
    }
  }
  // Lengths 5..8, roughly uniform; the target is in half of the trials.
  CHECK(lengths.size() == 4);
  for (auto [len, count] : lengths) {
    CHECK((len >= 5 && len <= 8));
    CHECK(count > trials / 6);
  }
  CHECK(withTarget > trials * 0.45);
  CHECK(withTarget < trials * 0.55);
}

TEST_CASE("the demo's simplification: one cue per trial (2 cues per episode)") {
  CueRewardConfig cfg;
  cfg.numCues = 2;
  cfg.cuesPerTrial = 1;
  CueRewardTask task(cfg, 8);
  Rng rng(7);
  std::map<int, int> lengths;
  int trials = 0, withTarget = 0;
  for (int episode = 0; episode < 50; ++episode) {
    task.reset(rng);
    std::vector<int> actions(8, 1);
    std::vector<float> rewards(8);
    for (int t = 0; t < cfg.episodeLength; ++t) {
      for (int b = 0; b < task.batch(); ++b) {
        const auto &e = task.element(b);
        if (e.pos != 0)
          continue;
        ++trials;
        ++lengths[int(e.trial.size())];
        std::vector<int> shown = checkedTrialCues(e);
        REQUIRE(shown.size() == 1);
        CHECK((shown[0] == e.target) == e.targetShown);
        withTarget += e.targetShown;
      }
      task.act(actions.data(), rewards.data(), rng);
    }
  }
  // L = 2/2 + 3 + randint(2): trials of 4 or 5 steps; the target is shown in half of them.
  CHECK(lengths.size() == 2);
  CHECK(lengths.count(4) == 1);
  CHECK(lengths.count(5) == 1);
  CHECK(withTarget > trials * 0.45);
  CHECK(withTarget < trials * 0.55);
}

TEST_CASE("cues per trial outside 1..2 are rejected") {
  CueRewardConfig cfg;
  cfg.cuesPerTrial = 3;
  CHECK_THROWS_AS(CueRewardTask(cfg, 1), std::invalid_argument);
  cfg.cuesPerTrial = 0;
  CHECK_THROWS_AS(CueRewardTask(cfg, 1), std::invalid_argument);
}

TEST_CASE("a bad action or a step past the episode throws before anything changes") {
  // ElementTask's checks (Task.h), as the bandit plug-in and the maze get them too.
  CueRewardConfig cfg;
  cfg.episodeLength = 3;
  CueRewardTask task(cfg, 2);
  Rng rng(5);
  task.reset(rng);
  Rng::State before = rng.state();
  std::vector<float> rewards(2, 7.f);
  for (int bad : {-1, 2}) {
    CAPTURE(bad);
    int actions[2] = {0, bad};
    CHECK_THROWS_WITH_AS(
        task.act(actions, rewards.data(), rng),
        ("cue-reward: action " + std::to_string(bad) + " of batch element 1 is not in [0, 2)")
            .c_str(),
        std::out_of_range);
    CHECK(task.stepIndex() == 0);
    CHECK(std::equal(before.words, before.words + 4, rng.state().words));
    CHECK(rewards[0] == 7.f);
    CHECK(task.element(0).prevAction == -1);
  }
  CHECK_THROWS_AS(task.actElement(0, 0, 5, rng), std::out_of_range);
  CHECK_THROWS_AS(task.actElement(0, 3, 0, rng), std::logic_error);
  int actions[2] = {0, 1};
  for (int t = 0; t < cfg.episodeLength; ++t)
    task.act(actions, rewards.data(), rng);
  CHECK(task.stepIndex() == 3);
  CHECK_THROWS_WITH_AS(task.act(actions, rewards.data(), rng),
                       "cue-reward: step 3 is outside the episode of 3 steps (call reset)",
                       std::logic_error);
  task.reset(rng);
  CHECK_NOTHROW(task.act(actions, rewards.data(), rng));
}

TEST_CASE("only the GO step is scored, and the reward and action are seen on the next step") {
  CueRewardConfig cfg;
  CueRewardTask task(cfg, 1);
  Rng rng(7);
  task.reset(rng);
  std::vector<float> x(size_t(cfg.inputSize()));
  int scored = 0;
  for (int t = 0; t < cfg.episodeLength; ++t) {
    task.observe(x.data());
    const auto &e = task.element(0);
    int kind = e.trial[size_t(e.pos)];
    CHECK(x[21] == 1.f);                                           // bias
    CHECK(x[22] == doctest::Approx(float(t) / cfg.episodeLength)); // time
    CHECK(x[20] == (kind == CueRewardTask::go ? 1.f : 0.f));       // GO flag
    if (kind >= 0)
      CHECK(std::vector<float>(x.begin(), x.begin() + 20) == e.cues[size_t(kind)]);
    else
      CHECK(std::vector<float>(x.begin(), x.begin() + 20) == std::vector<float>(20, 0.f));
    // Choose the right answer on even GO steps and the wrong one on odd ones.
    int right = e.targetShown ? 1 : 0;
    int action = kind == CueRewardTask::go ? (scored % 2 == 0 ? right : 1 - right) : t % 2;
    float reward = 0;
    task.act(&action, &reward, rng);
    if (kind == CueRewardTask::go) {
      CHECK(reward == (scored % 2 == 0 ? 1.f : -1.f));
      ++scored;
    } else {
      CHECK(reward == 0.f); // wp = 0: other steps are free
    }
    std::vector<float> next(size_t(cfg.inputSize()));
    task.observe(next.data());
    CHECK(next[23] == reward);
    CHECK(next[25 + action] == 1.f);
    CHECK(next[25 + 1 - action] == 0.f);
  }
  CHECK(scored >= 120 / 8 - 1);
}

TEST_CASE("the task is deterministic for a seed and its batch elements are independent") {
  CueRewardConfig cfg;
  auto run = [&](uint64_t seed) {
    CueRewardTask task(cfg, 4);
    Rng rng(seed);
    task.reset(rng);
    std::vector<float> xs;
    std::vector<int> actions(4, 1);
    std::vector<float> rewards(4), x(size_t(4 * cfg.inputSize()));
    for (int t = 0; t < cfg.episodeLength; ++t) {
      task.observe(x.data());
      xs.insert(xs.end(), x.begin(), x.end());
      task.act(actions.data(), rewards.data(), rng);
    }
    return xs;
  };
  CHECK(run(3) == run(3));
  CHECK(run(3) != run(4));
  // Element 0 and 1 of the same run see different trials (not aligned across the batch).
  std::vector<float> xs = run(5);
  int n = cfg.inputSize();
  int differentGo = 0;
  for (int t = 0; t < cfg.episodeLength; ++t)
    differentGo += xs[size_t((t * 4 + 0) * n + 20)] != xs[size_t((t * 4 + 1) * n + 20)];
  CHECK(differentGo > 0);
}

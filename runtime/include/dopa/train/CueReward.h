//===- CueReward.h - The cue-reward association task ---------------------===//
//
// The stimulus-response task of Backpropamine §2.1, exactly as the reference code (sr/srbatch.py)
// defines it: per episode and batch element, 4 distinct cues of 20 ±1 bits and a target cue; trials
// of 5-8 steps run back to back, each showing 2 of the 4 cues in random order among blanks, then a
// GO step whose action is scored (+rew when "target shown" and action 1, or "target absent" and
// action 0; -rew otherwise), then a blank on which the reward is seen. Trials are not aligned
// across the batch; the episode (120 steps) can end mid-trial. Inputs (27 per step):
//   [0:20] cue bits (0 when blank) [20] GO [21] bias 1 [22] step/eplen [23] previous reward
//   [24] unused 0 [25:27] one-hot previous action (all zero at step 0)
// One simplification is offered, off by default: trials that show one cue instead of two
// (cuesPerTrial = 1, with 2 cues per episode the target is still shown in half of the trials), an
// easier association that the demo uses to show learning within minutes.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/runtime/Random.h"
#include "dopa/train/Task.h"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dopa {

struct CueRewardConfig {
  int episodeLength = 120; // --eplen
  int numCues = 4;         // --ni
  int cuesPerTrial = 2;    // the reference shows 2; 1 (a documented simplification) in the demo
  int cueSize = 20;        // --cs
  float reward = 1;        // --rew
  float wrongPenalty = 0;  // --wp: cost of action 1 on any step
  float flipProb = 0;      // --pf: probability of flipping the reward's sign
  int inputSize() const { return cueSize + 7; }
  static constexpr int numActions = 2;
};

class CueRewardTask final : public ElementTask {
public:
  CueRewardTask(CueRewardConfig config, int batch);

  const CueRewardConfig &config() const { return cfg; }
  int batch() const override { return B; }
  int observationSize() const override { return cfg.inputSize(); }
  int numActions() const override { return CueRewardConfig::numActions; }
  int episodeLength() const override { return cfg.episodeLength; }

  /// One element at a time (ElementSteps; ElementTask steps the batch with them, in element
  /// order): resetElement draws new cues, a new target and a new trial; observeElement writes
  /// inputSize() floats; actElement throws std::out_of_range for an action outside [0, 2) and
  /// std::logic_error for a step outside the episode.
  void resetElement(int b, Rng &rng) override;
  void observeElement(int b, int t, float *x) const override;
  float actElement(int b, int t, int action, Rng &rng) override;
  /// episode_length, num_cues, cues_per_trial, cue_size, reward, wrong_penalty, flip_prob.
  std::vector<std::pair<std::string, std::string>> settings() const override;

  // Introspection for tests.
  struct Element {
    std::vector<std::vector<float>> cues; // numCues x cueSize, entries in {-1, +1}
    int target = 0;
    std::vector<int> trial; // step kinds of the current trial: cue id >= 0, blank -1, GO -2
    int pos = 0;            // position in the trial
    bool targetShown = false;
    float prevReward = 0;
    int prevAction = -1;
    int trialsStarted = 0;
  };
  const Element &element(int b) const { return elems[size_t(b)]; }

  static constexpr int blank = -1;
  static constexpr int go = -2;

private:
  void newTrial(Element &e, Rng &rng);

  CueRewardConfig cfg;
  int B;
  std::vector<Element> elems;
};

} // namespace dopa

//===- CueReward.cpp - The cue-reward association task -------------------===//
//
// Implements CueRewardTask as sr/srbatch.py does (see CueReward.h).
//
//===----------------------------------------------------------------------===//
#include "dopa/train/CueReward.h"

#include <algorithm>
#include <stdexcept>

using namespace dopa;

CueRewardTask::CueRewardTask(CueRewardConfig config, int batch)
    : ElementTask("cue-reward"), cfg(config), B(batch) {
  if (batch < 1 || cfg.numCues < 2 || cfg.cueSize < 1 || cfg.episodeLength < 1)
    throw std::invalid_argument("cue-reward: invalid configuration");
  if (cfg.cuesPerTrial < 1 || cfg.cuesPerTrial > 2 || cfg.cuesPerTrial > cfg.numCues)
    throw std::invalid_argument("cue-reward: cues per trial must be 1 or 2 (and at most the cues)");
  if (cfg.cueSize < 31 && (int64_t(1) << cfg.cueSize) < cfg.numCues)
    throw std::invalid_argument("cue-reward: too few cue bits for distinct cues");
  elems.resize(size_t(B));
}

void CueRewardTask::newTrial(Element &e, Rng &rng) {
  // L = ni//2 + 3 + randint(ni); [blank] + shuffle(2 cue ids + (L-5) blanks) + [GO] + [blank].
  // With one cue per trial: [blank] + shuffle(1 cue id + (L-4) blanks) + [GO] + [blank].
  int len = cfg.numCues / 2 + 3 + int(rng.below(uint64_t(cfg.numCues)));
  int first = int(rng.below(uint64_t(cfg.numCues)));
  int second = first;
  std::vector<int> middle = {first};
  if (cfg.cuesPerTrial == 2) {
    second = int(rng.below(uint64_t(cfg.numCues - 1)));
    if (second >= first)
      ++second; // two distinct cues
    middle.push_back(second);
  }
  for (int i = 0; i < len - 3 - cfg.cuesPerTrial; ++i)
    middle.push_back(blank);
  for (size_t i = middle.size(); i > 1; --i) // Fisher-Yates with our generator
    std::swap(middle[i - 1], middle[size_t(rng.below(i))]);
  e.trial.clear();
  e.trial.push_back(blank);
  e.trial.insert(e.trial.end(), middle.begin(), middle.end());
  e.trial.push_back(go);
  e.trial.push_back(blank);
  e.pos = 0;
  e.targetShown = first == e.target || second == e.target;
  ++e.trialsStarted;
}

void CueRewardTask::resetElement(int b, Rng &rng) {
  Element &e = elems.at(size_t(b));
  e.cues.assign(size_t(cfg.numCues), std::vector<float>(size_t(cfg.cueSize)));
  for (int c = 0; c < cfg.numCues; ++c) {
    bool distinct = false;
    while (!distinct) {
      for (float &bit : e.cues[size_t(c)])
        bit = rng.below(2) ? 1.f : -1.f;
      distinct = true;
      for (int d = 0; d < c; ++d)
        distinct &= e.cues[size_t(d)] != e.cues[size_t(c)];
    }
  }
  e.target = int(rng.below(uint64_t(cfg.numCues)));
  e.prevReward = 0;
  e.prevAction = -1;
  e.trialsStarted = 0;
  newTrial(e, rng);
}

void CueRewardTask::observeElement(int b, int step, float *row) const {
  const Element &e = elems.at(size_t(b));
  int n = cfg.inputSize();
  std::fill(row, row + n, 0.f);
  int kind = e.trial[size_t(e.pos)];
  if (kind >= 0)
    std::copy(e.cues[size_t(kind)].begin(), e.cues[size_t(kind)].end(), row);
  int cs = cfg.cueSize;
  row[cs] = kind == go ? 1.f : 0.f;
  row[cs + 1] = 1.f;
  row[cs + 2] = float(step) / float(cfg.episodeLength);
  row[cs + 3] = e.prevReward;
  if (e.prevAction >= 0)
    row[cs + 5 + e.prevAction] = 1.f;
}

float CueRewardTask::actElement(int b, int step, int a, Rng &rng) {
  checkStep(b, step, a); // the trial's position, not the step, says where the element is
  Element &e = elems.at(size_t(b));
  float r = a == 1 ? -cfg.wrongPenalty : 0.f;
  if (e.trial[size_t(e.pos)] == go) {
    bool right = (e.targetShown && a == 1) || (!e.targetShown && a == 0);
    r += right ? cfg.reward : -cfg.reward;
    if (cfg.flipProb > 0 && rng.uniform() < cfg.flipProb)
      r = -r;
  }
  e.prevReward = r;
  e.prevAction = a;
  if (++e.pos == int(e.trial.size()))
    newTrial(e, rng);
  return r;
}

std::vector<std::pair<std::string, std::string>> CueRewardTask::settings() const {
  return {{"episode_length", std::to_string(cfg.episodeLength)},
          {"num_cues", std::to_string(cfg.numCues)},
          {"cues_per_trial", std::to_string(cfg.cuesPerTrial)},
          {"cue_size", std::to_string(cfg.cueSize)},
          {"reward", settingText(cfg.reward)},
          {"wrong_penalty", settingText(cfg.wrongPenalty)},
          {"flip_prob", settingText(cfg.flipProb)}};
}
